/**
 * Per-input sums for the standard error of a Fisher trace (docs/science.md section 2): the rows of one
 * `sample_id` (several label draws, or one row per class weighted by p(y|x)) are one cluster, since they share
 * the input. For each group (a parameter tensor, a layer, the total) and input x the state holds
 * `A_x = sum_r w_r q_r` (q_r: the row's squared gradient norm over the group) and `W_x = sum_r w_r`; the trace is
 * the ratio `T = sum A / sum W` and its cluster (ratio-estimator) standard error is
 * `SE^2 = n / (n - 1) * sum_x (A_x - T W_x)^2 / (sum_x W_x)^2` over the n inputs with `W_x > 0`. With one row
 * of weight 1 per input this is the textbook `sd(q) / sqrt(n)`.
 *
 * @module
 */

/** Serializable form of {@linkcode TraceClusters}. */
export interface ClusterState {
  groups: number;
  ids: BigInt64Array;
  a: Float64Array;
  w: Float64Array;
}

/** Cluster sums of one step: `groups` columns per input, inputs in order of first arrival. */
export class TraceClusters {
  readonly groups: number;
  #slot = new Map<bigint, number>();
  #ids = new BigInt64Array(16);
  #a: Float64Array;
  #w: Float64Array;

  constructor(groups: number) {
    this.groups = groups;
    this.#a = new Float64Array(16 * groups);
    this.#w = new Float64Array(16 * groups);
  }

  /** Number of inputs seen. */
  get size(): number {
    return this.#slot.size;
  }

  /** The slot of input `id` (added when new). */
  slot(id: bigint): number {
    let s = this.#slot.get(id);
    if (s === undefined) {
      s = this.#slot.size;
      if (s === this.#ids.length) {
        const grow = <T extends Float64Array | BigInt64Array>(x: T, n: number): T => {
          const y = new (x.constructor as new (n: number) => T)(n);
          y.set(x as never);
          return y;
        };
        this.#ids = grow(this.#ids, 2 * s);
        this.#a = grow(this.#a, 2 * s * this.groups);
        this.#w = grow(this.#w, 2 * s * this.groups);
      }
      this.#ids[s] = id;
      this.#slot.set(id, s);
    }
    return s;
  }

  /** Adds a row of weight `w` whose squared norm over `group` is `q` (rows with a non-finite q are left out). */
  add(slot: number, group: number, q: number, w: number): void {
    if (!(q - q === 0)) return;
    this.#a[slot * this.groups + group] += w * q;
    this.#w[slot * this.groups + group] += w;
  }

  /** Adds another step's clusters (same groups). */
  merge(o: TraceClusters): void {
    const g = this.groups;
    for (let s = 0; s < o.size; s++) {
      const m = this.slot(o.#ids[s]);
      for (let k = 0; k < g; k++) {
        this.#a[m * g + k] += o.#a[s * g + k];
        this.#w[m * g + k] += o.#w[s * g + k];
      }
    }
  }

  /** Inputs with weight in `group`, and the standard error of the group's trace (NaN with fewer than 2). */
  standardError(group: number): { inputs: number; se: number } {
    const g = this.groups;
    // Inputs in sample_id order, so that the sums do not depend on arrival order (batching, merging).
    const order = [...this.#slot.values()].sort((x, y) => (this.#ids[x] < this.#ids[y] ? -1 : 1));
    let sa = 0, sw = 0, n = 0;
    for (const s of order) {
      const w = this.#w[s * g + group];
      if (w > 0) {
        sa += this.#a[s * g + group];
        sw += w;
        n++;
      }
    }
    if (n < 2) return { inputs: n, se: NaN };
    const t = sa / sw;
    let ss = 0;
    for (const s of order) {
      const w = this.#w[s * g + group];
      if (w > 0) ss += (this.#a[s * g + group] - t * w) ** 2;
    }
    return { inputs: n, se: Math.sqrt((n / (n - 1)) * ss) / sw };
  }

  state(): ClusterState {
    const n = this.size;
    return {
      groups: this.groups,
      ids: this.#ids.slice(0, n),
      a: this.#a.slice(0, n * this.groups),
      w: this.#w.slice(0, n * this.groups),
    };
  }

  static from(st: ClusterState): TraceClusters {
    const c = new TraceClusters(st.groups);
    for (let s = 0; s < st.ids.length; s++) {
      const m = c.slot(st.ids[s]);
      c.#a.set(st.a.subarray(s * st.groups, (s + 1) * st.groups), m * st.groups);
      c.#w.set(st.w.subarray(s * st.groups, (s + 1) * st.groups), m * st.groups);
    }
    return c;
  }
}
