import assert from "node:assert/strict";
import { kendallTau } from "./kendall.ts";
import { Rng } from "../../tests/_util.ts";

/** Brute force from the definition over all ordered pairs (i != j), tau-b with tie counts (scipy's "b"). */
function bruteTauB(x: number[], y: number[]): number {
  let c = 0, d = 0, onlyX = 0, onlyY = 0;
  for (let i = 0; i < x.length; i++) {
    for (let j = 0; j < x.length; j++) {
      if (i === j) continue;
      const dx = x[i] - x[j], dy = y[i] - y[j];
      if (dx === 0 && dy === 0) continue;
      if (dx === 0) onlyX++;
      else if (dy === 0) onlyY++;
      else if (dx * dy > 0) c++;
      else d++;
    }
  }
  // Ordered pairs count each unordered pair twice; the ratio is unchanged.
  return (c - d) / Math.sqrt((c + d + onlyX) * (c + d + onlyY));
}

Deno.test("kendallTau: known values (scipy.stats.kendalltau)", () => {
  assert.equal(kendallTau([1, 2, 3, 4, 5], [1, 2, 3, 4, 5]), 1);
  assert.equal(kendallTau([1, 2, 3, 4, 5], [5, 4, 3, 2, 1]), -1);
  // scipy.stats.kendalltau([12, 2, 1, 12, 2], [1, 4, 7, 1, 0]).statistic == -0.4714045207910316
  assert.ok(Math.abs(kendallTau([12, 2, 1, 12, 2], [1, 4, 7, 1, 0]) - -0.4714045207910316) < 1e-15);
  assert.ok(Number.isNaN(kendallTau([1, 1, 1], [1, 2, 3])));
  assert.ok(Number.isNaN(kendallTau([1], [1])));
});

Deno.test("kendallTau: equals the brute-force tau-b with ties", () => {
  const rng = new Rng(7);
  for (let t = 0; t < 50; t++) {
    const n = 2 + Math.floor(rng.next() * 12);
    const x = Array.from({ length: n }, () => Math.floor(rng.next() * 4));
    const y = Array.from({ length: n }, () => Math.floor(rng.next() * 4));
    const want = bruteTauB(x, y), got = kendallTau(x, y);
    if (Number.isNaN(want)) assert.ok(Number.isNaN(got));
    else assert.ok(Math.abs(got - want) < 1e-12, `${got} vs ${want}`);
  }
});

Deno.test("kendallTau: errors name the problem", () => {
  assert.throws(() => kendallTau([1, 2], [1]), /differ in length/);
  assert.throws(() => kendallTau([1, NaN], [1, 2]), /holds NaN/);
});
