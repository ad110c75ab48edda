/** The small order statistics against values numpy gives (`numpy.nanpercentile`, linear interpolation). */
import assert from "node:assert/strict";
import { mean, percentile } from "./stats.ts";

Deno.test("percentile: numpy's linear interpolation, NaN ignored, NaN for no values", () => {
  assert.equal(percentile([3, 1, NaN, 2], 50), 2); // numpy.nanpercentile([3, 1, nan, 2], 50) = 2.0
  assert.equal(percentile([4, 1, 3, 2], 50), 2.5);
  assert.equal(percentile([4, 1, 3, 2], 25), 1.75);
  assert.equal(percentile(Float64Array.of(-Infinity, 5, 1), 100), 5);
  assert.equal(percentile([7], 90), 7);
  assert.ok(Number.isNaN(percentile([NaN, NaN], 50)));
  assert.ok(Number.isNaN(percentile([], 50)));
  assert.equal(mean([1, NaN, 2]), 1.5);
});
