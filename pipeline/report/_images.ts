/**
 * Input images for the report: the pixels of chosen samples, read from an infotap wire-format stream (any
 * kind) whose rows carry `sample_id` and a tensor column of pixels.
 *
 * A column of width `h*h` is a grey `h x h` image, `h*h*2` two colour channels (red, green: e.g. Colored
 * MNIST), `h*h*3` RGB; channels last (HWC, as tfjs). Each image is scaled to 0..255 by its own min and max.
 *
 * @module
 */
import { InputError, show } from "../../schemas/errors.ts";
import { readInput } from "../../schemas/source.ts";

/** One image, as RGBA bytes (base64) for a canvas. */
export interface SampleImage {
  sampleId: string;
  width: number;
  height: number;
  /** `width * height * 4` bytes, base64. */
  rgba: string;
  /** The row's label, when the stream has one. */
  label: number | null;
}

/** Images by sample id, and the column they came from. */
export interface ImageSet {
  column: string;
  shape: string;
  images: Map<string, SampleImage>;
}

/** `[h, channels]` when `width` is `h*h*c` for c in 1, 3, 2 (in that order), else null. */
export function imageShape(width: number): [number, number] | null {
  for (const c of [1, 3, 2]) {
    if (width % c !== 0) continue;
    const h = Math.round(Math.sqrt(width / c));
    if (h >= 2 && h * h * c === width) return [h, c];
  }
  return null;
}

const IMAGE_NAME = /input|image|pixel|^x$/i;

/** Converts one row of pixels (HWC) to RGBA bytes scaled by the row's min and max. */
export function toRgba(pixels: Float32Array, h: number, c: number): Uint8Array {
  let lo = Infinity, hi = -Infinity;
  for (const v of pixels) {
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const scale = hi > lo ? 255 / (hi - lo) : 0;
  const out = new Uint8Array(h * h * 4);
  for (let p = 0; p < h * h; p++) {
    const px = (k: number) => {
      const v = pixels[p * c + k];
      return Number.isFinite(v) ? Math.round((v - lo) * scale) : 0;
    };
    const r = px(0), g = c > 1 ? px(1) : r, b = c === 3 ? px(2) : c === 2 ? 0 : r;
    out.set([r, g, b, 255], p * 4);
  }
  return out;
}

function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

/**
 * Reads the images of the samples `ids` (first row of each id) from the stream `path`. `column` names the
 * pixel column; by default the first whose name looks like an input (input, image, pixel, x) and whose width
 * is an image shape, else the first with an image shape.
 */
export async function loadImages(path: string, ids: Set<string>, column?: string): Promise<ImageSet> {
  const images = new Map<string, SampleImage>();
  let col: string | null = null;
  let shape: [number, number] | null = null;
  for await (const { batch, layout } of readInput(path)) {
    if (col === null) {
      const tensors = layout.tensors;
      const listing = tensors.map((t) => `${t.name}:${t.width}`).join(", ");
      if (column !== undefined) {
        const t = tensors.find((t) => t.name === column);
        if (!t) {
          throw new InputError(
            `Cannot show images (--image-column) as the stream has no such column (has: ${listing}): current value is ${
              show(column)
            }`,
            { file: path, batch: batch.index, column },
          );
        }
        shape = imageShape(t.width);
        if (!shape) {
          throw new InputError(
            `Cannot show images as the column's width is not h*h, h*h*2 or h*h*3: current value is ${t.width}`,
            { file: path, batch: batch.index, column },
          );
        }
        col = t.name;
      } else {
        const fits = tensors.filter((t) => imageShape(t.width));
        const t = fits.find((t) => IMAGE_NAME.test(t.name)) ?? fits[0];
        if (!t) {
          throw new InputError(
            `Cannot show images as no tensor column has a width of h*h, h*h*2 or h*h*3 pixels: current value is ${listing}`,
            { file: path, batch: batch.index },
          );
        }
        col = t.name;
        shape = imageShape(t.width);
      }
    }
    const [h, c] = shape!;
    const tc = batch.columns.find((t) => t.name === col)!;
    for (let i = 0; i < batch.numRows; i++) {
      const id = batch.sampleId[i].toString();
      if (!ids.has(id) || images.has(id)) continue;
      const px = tc.values.subarray(i * tc.width, (i + 1) * tc.width);
      images.set(id, {
        sampleId: id,
        width: h,
        height: h,
        rgba: base64(toRgba(px, h, c)),
        label: batch.label ? batch.label[i] : null,
      });
    }
    if (images.size === ids.size) break;
  }
  if (col === null) {
    throw new InputError(`Cannot show images as the stream holds no batch: current value is 0 batches`, { file: path });
  }
  const [h, c] = shape!;
  return { column: col, shape: `${h}x${h}${c > 1 ? `x${c}` : ""}`, images };
}
