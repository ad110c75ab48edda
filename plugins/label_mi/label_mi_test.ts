/**
 * Tests of `label-mi` against a direct contingency-table computation (numpy.histogram binning written here) and
 * its error without a label column.
 */
import assert from "node:assert/strict";
import { labelMiPlugin } from "./label_mi.ts";
import { Rng, runPlugin } from "../../tests/_util.ts";
import { mixedActivations } from "../../tests/_contract_fixtures.ts";
import { activationBatch } from "../../tests/_util.ts";
import type { Batch } from "../../schemas/batch.ts";

function npBin(x: number, lo: number, hi: number, B: number): number {
  if (!Number.isFinite(x)) return -1;
  if (!(hi > lo)) return 0;
  return Math.min(B - 1, Math.max(0, Math.floor(((x - lo) / (hi - lo)) * B)));
}

function contingencyMi(a: number[], y: number[]): number {
  const joint = new Map<string, number>(), ma = new Map<number, number>(), my = new Map<number, number>();
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] < 0) continue;
    n++;
    joint.set(`${a[i]},${y[i]}`, (joint.get(`${a[i]},${y[i]}`) ?? 0) + 1);
    ma.set(a[i], (ma.get(a[i]) ?? 0) + 1);
    my.set(y[i], (my.get(y[i]) ?? 0) + 1);
  }
  let mi = 0;
  for (const [k, c] of joint) {
    const [x, l] = k.split(",").map(Number);
    mi += (c / n) * Math.log((c / n) / ((ma.get(x)! / n) * (my.get(l)! / n)));
  }
  return mi;
}

function column(b: Batch[], layer: string, j: number): number[] {
  const out: number[] = [];
  for (const x of b) {
    const c = x.columns.find((c) => c.name === layer)!;
    for (let r = 0; r < x.numRows; r++) out.push(c.values[r * c.width + j]);
  }
  return out;
}

Deno.test("label-mi equals a direct contingency-table MI to 1e-9 (global, neuron, user range)", async () => {
  const batches = mixedActivations(41);
  const labels = batches.flatMap((b) => [...b.label!]);
  const widths = { fc1: 5, fc2: 3 };
  const all = Object.entries(widths).flatMap(([l, w]) => [...Array(w).keys()].map((j) => column(batches, l, j)));
  const fin = all.flat().filter(Number.isFinite);
  const glo = Math.min(...fin), ghi = Math.max(...fin);
  for (
    const [label, options] of [
      ["global", { bins: 9 }],
      ["neuron", { bins: 5, binning: "neuron" }],
      ["range", { bins: 4, range: [-1, 1] as [number, number] }],
    ] as const
  ) {
    const t = (await runPlugin(labelMiPlugin, options, batches)).results.label_mi;
    assert.equal(t.numRows, 8);
    let nonzero = 0;
    for (let i = 0; i < t.numRows; i++) {
      const v = column(batches, t.getChild("layer")!.get(i), t.getChild("neuron")!.get(i));
      const f = v.filter(Number.isFinite);
      const [lo, hi] = label === "global"
        ? [glo, ghi]
        : label === "neuron"
        ? [Math.min(...f), Math.max(...f)]
        : [-1, 1];
      const codes = v.map((x) => npBin(x, lo, hi, options.bins));
      const ref = contingencyMi(codes, labels);
      const got = t.getChild("mi")!.get(i) as number;
      assert.ok(Math.abs(got - ref) < 1e-9, `${label} row ${i}: ${got} vs ${ref}`);
      assert.equal(Number(t.getChild("samples")!.get(i)), f.length);
      assert.equal(Number(t.getChild("nonfinite")!.get(i)), v.length - f.length);
      if (ref > 1e-3) nonzero++;
    }
    assert.ok(nonzero > 0, `${label}: every reference MI is ~0, the comparison proves little`);
  }
});

Deno.test("label-mi: a neuron that is the label has MI = H(label); no label column is a clear error", async () => {
  const rng = new Rng(4);
  const rows = 200;
  const y = Int32Array.from({ length: rows }, () => rng.int(3));
  const v = Float32Array.from(y, (l) => l + 0.5 * rng.next());
  const b = activationBatch(rows, { fc: { width: 1, values: v } }, { label: y });
  const t = (await runPlugin(labelMiPlugin, { bins: 3, binning: "neuron" }, [b])).results.label_mi;
  const p = [0, 1, 2].map((l) => y.filter((x) => x === l).length / rows);
  const h = -p.reduce((s, q) => s + (q > 0 ? q * Math.log(q) : 0), 0);
  assert.ok(Math.abs((t.getChild("mi")!.get(0) as number) - h) < 1e-12);

  const nolabel = activationBatch(10, { fc: { width: 1, values: new Float32Array(10) } });
  await assert.rejects(
    () => runPlugin(labelMiPlugin, { bins: 3, range: [0, 1] }, [{ ...nolabel, file: "x.arrows", index: 0 }]),
    /^InputError: file 'x.arrows', batch 0, column 'label': Cannot compute label MI \(label-mi\) as the stream has no 'label' column: current value is missing$/,
  );
});
