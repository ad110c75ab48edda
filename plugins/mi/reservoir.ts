/**
 * A seeded, mergeable uniform sample of at most `capacity` rows ("bottom-k" sampling by random keys).
 *
 * Every row gets a key: a 53-bit hash of `(seed, sample_id, step)`; the reservoir keeps the `capacity` rows of
 * smallest key (ties broken by sample id). Since the key depends only on the row, not on arrival order, the kept
 * set is the `capacity` smallest keys of the whole stream: independent of batch sizes, and `merge(A, B)` (keep
 * the smallest keys of both) equals one pass over A then B exactly. For distinct (sample_id, step) the keys are
 * i.i.d. uniform, so the kept rows are a uniform sample without replacement. Rows come out sorted by key.
 *
 * @module
 */
import type { Batch } from "../../schemas/batch.ts";
import { mix as fmix32 } from "../../schemas/sketch.ts";
import { stepKey, stepRuns } from "../../pipeline/core/steps.ts";

/** The 53-bit key (as a number, exact) of a row, from the seed and the 64-bit sample id and step words. */
export function rowKey(seed: number, idLo: number, idHi: number, stepLo: number, stepHi: number): number {
  let a = fmix32((seed ^ 0x9e3779b9) >>> 0);
  let b = fmix32((seed ^ 0x7f4a7c15) + 0x632be5ab >>> 0);
  a = fmix32(a ^ idLo);
  b = fmix32(b ^ Math.imul(idLo, 0x27d4eb2f));
  a = fmix32(a ^ idHi);
  b = fmix32(b ^ Math.imul(idHi ^ a, 0x165667b1));
  a = fmix32(a ^ stepLo);
  b = fmix32(b ^ stepHi ^ Math.imul(a, 0x9e3779b1));
  a = fmix32(a ^ stepHi);
  return a * 2097152 + (b >>> 11); // a * 2^21 + 21 bits
}

/** The layers a reservoir holds. */
export interface LayerShape {
  name: string;
  width: number;
}

/** Serializable reservoir contents (sorted by key, at most `capacity` rows). */
export interface ReservoirState {
  keys: Float64Array;
  ids: BigInt64Array;
  values: Float32Array[];
}

/** A bottom-k reservoir of rows of several layers. */
export class Reservoir {
  readonly capacity: number;
  readonly layers: LayerShape[];
  #keys: Float64Array;
  #ids: BigInt64Array;
  #values: Float32Array[];
  #count = 0;
  /** Rows with a key above this can never be kept (the largest kept key after a compaction). */
  #threshold = Infinity;

  constructor(capacity: number, layers: LayerShape[]) {
    this.capacity = capacity;
    this.layers = layers;
    const cap = 2 * capacity;
    this.#keys = new Float64Array(cap);
    this.#ids = new BigInt64Array(cap);
    this.#values = layers.map((l) => new Float32Array(cap * l.width));
  }

  #push(key: number, id: bigint, src: { values: Float32Array; width: number }[], row: number): void {
    if (key > this.#threshold) return;
    if (this.#count === this.#keys.length) this.#compact();
    if (key > this.#threshold) return;
    const at = this.#count++;
    this.#keys[at] = key;
    this.#ids[at] = id;
    for (let l = 0; l < src.length; l++) {
      const w = src[l].width;
      this.#values[l].set(src[l].values.subarray(row * w, row * w + w), at * w);
    }
  }

  /** Keeps the `capacity` smallest keys, sorted. */
  #compact(): void {
    const n = this.#count, keys = this.#keys, ids = this.#ids;
    const order = Array.from({ length: n }, (_, i) => i);
    order.sort((i, j) => keys[i] - keys[j] || (ids[i] < ids[j] ? -1 : ids[i] > ids[j] ? 1 : i - j));
    const m = Math.min(n, this.capacity);
    const nk = new Float64Array(keys.length), ni = new BigInt64Array(keys.length);
    const nv = this.layers.map((l) => new Float32Array(keys.length * l.width));
    for (let r = 0; r < m; r++) {
      const i = order[r];
      nk[r] = keys[i];
      ni[r] = ids[i];
      for (let l = 0; l < this.layers.length; l++) {
        const w = this.layers[l].width;
        nv[l].set(this.#values[l].subarray(i * w, i * w + w), r * w);
      }
    }
    this.#keys = nk;
    this.#ids = ni;
    this.#values = nv;
    this.#count = m;
    if (m === this.capacity) this.#threshold = nk[m - 1];
  }

  /** Adds rows `[r0, r1)` of a batch (its columns in the reservoir's layer order). */
  addRows(batch: Batch, r0: number, r1: number, seed: number): void {
    const ids = batch.sampleId;
    const idWords = new Int32Array(ids.buffer, ids.byteOffset, ids.length * 2);
    const steps = batch.step;
    const stepWords = steps ? new Int32Array(steps.buffer, steps.byteOffset, steps.length * 2) : null;
    const src = batch.columns.map((c) => ({ values: c.values, width: c.width }));
    for (let r = r0; r < r1; r++) {
      const key = rowKey(
        seed,
        idWords[2 * r],
        idWords[2 * r + 1],
        stepWords ? stepWords[2 * r] : 0,
        stepWords ? stepWords[2 * r + 1] : 0,
      );
      this.#push(key, ids[r], src, r);
    }
  }

  /** Adds every row of another reservoir (same layers). */
  merge(other: Reservoir): void {
    const s = other.state();
    for (let r = 0; r < s.keys.length; r++) {
      this.#push(s.keys[r], s.ids[r], s.values.map((v, l) => ({ values: v, width: this.layers[l].width })), r);
    }
  }

  /** The kept rows (compacted, sorted by key). */
  state(): ReservoirState {
    this.#compact();
    const n = this.#count;
    return {
      keys: this.#keys.slice(0, n),
      ids: this.#ids.slice(0, n),
      values: this.#values.map((v, l) => v.slice(0, n * this.layers[l].width)),
    };
  }

  /** A reservoir holding a state's rows. */
  static fromState(capacity: number, layers: LayerShape[], s: ReservoirState): Reservoir {
    const r = new Reservoir(capacity, layers);
    for (let i = 0; i < s.keys.length; i++) {
      r.#push(s.keys[i], s.ids[i], s.values.map((v, l) => ({ values: v, width: layers[l].width })), i);
    }
    return r;
  }
}

/**
 * One reservoir per step key (one key without `--by-step`), all of one capacity and the layers `layers()` gives
 * (an estimator learns its layers at its first batch): the state of the KSG and kNN-entropy estimators.
 */
export class StepReservoirs {
  readonly steps = new Map<string, Reservoir>();
  readonly capacity: number;
  readonly #layers: () => LayerShape[];

  constructor(capacity: number, layers: () => LayerShape[]) {
    this.capacity = capacity;
    this.#layers = layers;
  }

  #get(key: string): Reservoir {
    let r = this.steps.get(key);
    if (!r) this.steps.set(key, r = new Reservoir(this.capacity, this.#layers()));
    return r;
  }

  /** Adds a batch's rows, each to its step's reservoir. */
  add(batch: Batch, byStep: boolean, seed: number): void {
    for (const run of stepRuns(batch, byStep)) this.#get(stepKey(run.step)).addRows(batch, run.r0, run.r1, seed);
  }

  /** Adds every row of another's reservoirs. */
  merge(other: StepReservoirs): void {
    for (const [key, r] of other.steps) this.#get(key).merge(r);
  }

  /** The reservoirs' states by step key. */
  state(): Record<string, ReservoirState> {
    const out: Record<string, ReservoirState> = {};
    for (const [key, r] of this.steps) out[key] = r.state();
    return out;
  }

  /** Holds the rows of states by step key. */
  load(states: Record<string, ReservoirState>): void {
    for (const [key, st] of Object.entries(states)) {
      this.steps.set(key, Reservoir.fromState(this.capacity, this.#layers(), st));
    }
  }
}
