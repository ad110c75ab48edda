/*
 * Native kernel of the KSG pair (k = 3, float32 values), loaded through Deno's FFI (plugins/kernels/native/native.ts)
 * and called by plugins/mi/ksg.ts `ksgPair` in place of its WebAssembly kernel. The same algorithm as the JavaScript
 * kernel there, and so the same counts: samples bucketed into the grid of the two neurons' strips; each sample's three
 * nearest other samples (Chebyshev, float64 distances of the float32 values, representatives of heavy points counted
 * with their multiplicity) from the 3 x 3 block of cells around it, then the rectangle of strips that can hold nearer
 * ones when the block's border is nearer than the 3rd distance; n_x and n_y by four interleaved branch-free binary
 * searches in the sorted marginals over the scanned strips' positions; the fixed-point psi terms summed as 64-bit
 * integers. Plain C: no instruction set beyond x86-64's (or any other target's) baseline is needed.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/** Per-realm scratch, grown to the largest pair seen. */
typedef struct {
  int32_t n, cells;
  int32_t *start, *pxr, *pyr, *pw;
  double *pxy;
} itn_ksg_ctx;

void *itn_ksg_new(void) { return calloc(1, sizeof(itn_ksg_ctx)); }

void itn_ksg_free(void *p) {
  itn_ksg_ctx *c = (itn_ksg_ctx *)p;
  if (!c) return;
  free(c->start), free(c->pxr), free(c->pyr), free(c->pw), free(c->pxy);
  free(c);
}

static int grow(itn_ksg_ctx *c, int32_t n, int32_t cells) {
  if (n > c->n) {
    free(c->pxr), free(c->pyr), free(c->pw), free(c->pxy);
    c->pxr = malloc(sizeof(int32_t) * (size_t)n);
    c->pyr = malloc(sizeof(int32_t) * (size_t)n);
    c->pw = malloc(sizeof(int32_t) * (size_t)n);
    c->pxy = malloc(sizeof(double) * 2 * (size_t)n);
    c->n = (c->pxr && c->pyr && c->pw && c->pxy) ? n : 0;
    if (!c->n) return -1;
  }
  if (cells > c->cells) {
    free(c->start);
    c->start = malloc(sizeof(int32_t) * ((size_t)cells + 1));
    c->cells = c->start ? cells : 0;
    if (!c->cells) return -1;
  }
  return 0;
}

/** Inserts `d` (counted `m` times) into the sorted three smallest `b[0] <= b[1] <= b[2]`. */
static inline void insert3(double *b, double d, int32_t m) {
  for (; m > 0 && d < b[2]; m--) {
    if (d < b[1]) {
      b[2] = b[1];
      if (d < b[0]) {
        b[1] = b[0];
        b[0] = d;
      } else b[1] = d;
    } else b[2] = d;
  }
}

/** Inserts the stored samples `[q0, q1)` other than `self` into `b`. */
static inline void scan(const double *pxy, const int32_t *pw, int32_t q0, int32_t q1, int32_t self, double x, double y,
                        double *b) {
  for (int32_t q = q0; q < q1; q++) {
    const double ax = fabs(x - pxy[2 * q]), ay = fabs(y - pxy[2 * q + 1]);
    if ((ax < b[2]) & (ay < b[2]) & (q != self)) insert3(b, ax > ay ? ax : ay, pw[q]);
  }
}

/**
 * The exact sum over the samples with `dup[i] == 0` (all when `dup` is NULL) of `psi[n_x + 1] + psi[n_y + 1]`
 * (`psi`: fixed-point terms, plugins/mi/ksg.ts `fixedPsi`), into `out[0]`; samples with `dup[i] > 0` are stored
 * as `dup[i]` identical neighbours, those with `dup[i] < 0` left out (their terms are the caller's). Per neuron:
 * values `xv`, strip `xc` and sorted position `xr` of each sample, sorted values `xs`, strip edges `xe` (`Gx + 1`).
 * Returns 0, or -1 where the scratch memory could not be had.
 */
int32_t itn_ksg_pair(void *p, int32_t n, const float *xv, const uint16_t *xc, const int32_t *xr, const float *xs,
                     const int32_t *xe, int32_t Gx, const float *yv, const uint16_t *yc, const int32_t *yr,
                     const float *ys, const int32_t *ye, int32_t Gy, const int32_t *dup, const int64_t *psi,
                     int64_t *out) {
  itn_ksg_ctx *c = (itn_ksg_ctx *)p;
  const int32_t cells = Gx * Gy;
  if (grow(c, n, cells) != 0) return -1;
  int32_t *start = c->start, *pxr = c->pxr, *pyr = c->pyr, *pw = c->pw;
  double *pxy = c->pxy;
  for (int32_t i = 0; i <= cells; i++) start[i] = 0;
  for (int32_t i = 0; i < n; i++) {
    if (dup && dup[i] < 0) continue;
    start[yc[i] * Gx + xc[i] + 1]++;
  }
  for (int32_t i = 0; i < cells; i++) start[i + 1] += start[i];
  for (int32_t i = 0; i < n; i++) {
    if (dup && dup[i] < 0) continue;
    const int32_t at = start[yc[i] * Gx + xc[i]]++;
    pxy[2 * at] = xv[i], pxy[2 * at + 1] = yv[i];
    pxr[at] = xr[i], pyr[at] = yr[i];
    pw[at] = dup && dup[i] > 0 ? dup[i] : 1;
  }
  for (int32_t i = cells; i > 0; i--) start[i] = start[i - 1];
  start[0] = 0;
  int64_t total = 0;
  for (int32_t cy = 0; cy < Gy; cy++) {
    const int32_t y0 = cy > 0 ? cy - 1 : 0, y1 = cy + 1 < Gy ? cy + 1 : Gy - 1;
    const double yLoV = y0 > 0 ? ys[ye[y0] - 1] : -INFINITY, yHiV = y1 < Gy - 1 ? ys[ye[y1 + 1]] : INFINITY;
    for (int32_t cx = 0; cx < Gx; cx++) {
      const int32_t c0 = start[cy * Gx + cx], c1 = start[cy * Gx + cx + 1];
      if (c0 == c1) continue;
      const int32_t x0 = cx > 0 ? cx - 1 : 0, x1 = cx + 1 < Gx ? cx + 1 : Gx - 1;
      const double xLoV = x0 > 0 ? xs[xe[x0] - 1] : -INFINITY, xHiV = x1 < Gx - 1 ? xs[xe[x1 + 1]] : INFINITY;
      for (int32_t s = c0; s < c1; s++) {
        if (pw[s] > 1) continue; // a heavy point's representative: its terms are the caller's
        const double x = pxy[2 * s], y = pxy[2 * s + 1];
        double b[3] = {INFINITY, INFINITY, INFINITY};
        for (int32_t gy = y0; gy <= y1; gy++) scan(pxy, pw, start[gy * Gx + x0], start[gy * Gx + x1 + 1], s, x, y, b);
        double kth = b[2];
        const double bx = x - xLoV < xHiV - x ? x - xLoV : xHiV - x, by = y - yLoV < yHiV - y ? y - yLoV : yHiV - y;
        int32_t lx = xe[x0], hx = xe[x1 + 1], ly = ye[y0], hy = ye[y1 + 1];
        if (!(kth <= (bx < by ? bx : by))) {
          // the 3rd neighbour may lie outside the block: scan the rectangle of strips that can hold nearer samples
          int32_t X0 = x0, X1 = x1, Y0 = y0, Y1 = y1;
          while (X0 > 0 && x - xs[xe[X0] - 1] < kth) X0--;
          while (X1 < Gx - 1 && xs[xe[X1 + 1]] - x < kth) X1++;
          while (Y0 > 0 && y - ys[ye[Y0] - 1] < kth) Y0--;
          while (Y1 < Gy - 1 && ys[ye[Y1 + 1]] - y < kth) Y1++;
          for (int32_t gy = Y0; gy <= Y1; gy++) {
            const int32_t row = gy * Gx;
            if (gy < y0 || gy > y1) scan(pxy, pw, start[row + X0], start[row + X1 + 1], s, x, y, b);
            else {
              if (X0 < x0) scan(pxy, pw, start[row + X0], start[row + x0], s, x, y, b);
              if (X1 > x1) scan(pxy, pw, start[row + x1 + 1], start[row + X1 + 1], s, x, y, b);
            }
          }
          kth = b[2];
          lx = xe[X0], hx = xe[X1 + 1], ly = ye[Y0], hy = ye[Y1 + 1];
        }
        // outside the radius: distance >= kth when kth > 0, distance > 0 when kth = 0
        const double r = kth > 0 ? kth : DBL_TRUE_MIN;
        const int32_t ax = pxr[s], ay = pyr[s];
        int32_t b1 = lx, l1 = ax + 1 - lx, b2 = ax, l2 = hx - ax, b3 = ly, l3 = ay + 1 - ly, b4 = ay, l4 = hy - ay;
        while ((l1 | l2 | l3 | l4) > 1) {
          const int32_t h1 = l1 >> 1, h2 = l2 >> 1, h3 = l3 >> 1, h4 = l4 >> 1;
          b1 += h1 * (x - (double)xs[b1 + h1] >= r);
          b2 += h2 * ((double)xs[b2 + h2] - x < r);
          b3 += h3 * (y - (double)ys[b3 + h3] >= r);
          b4 += h4 * ((double)ys[b4 + h4] - y < r);
          l1 -= h1, l2 -= h2, l3 -= h3, l4 -= h4;
        }
        const int32_t nx = b2 - (b1 + (x - (double)xs[b1] >= r)), ny = b4 - (b3 + (y - (double)ys[b3] >= r));
        total += psi[nx + 1] + psi[ny + 1];
      }
    }
  }
  out[0] = total;
  return 0;
}
