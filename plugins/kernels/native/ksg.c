/*
 * Native kernel of the KSG pair (k = 3, float32 values), loaded through Deno's FFI (plugins/kernels/native/native.ts)
 * and called by plugins/mi/ksg.ts `ksgPair` in place of its WebAssembly kernel. The same algorithm as the JavaScript
 * kernel there, and so the same counts: samples bucketed into the grid of the two neurons' strips; each sample's three
 * nearest other samples (Chebyshev, float64 distances of the float32 values, representatives of heavy points counted
 * with their multiplicity) from the 3 x 3 block of cells around it, then the rectangle of strips that can hold nearer
 * ones when the block's border is nearer than the 3rd distance; n_x and n_y by four interleaved branch-free binary
 * searches in the sorted marginals over the scanned strips' positions; the fixed-point psi terms summed as 64-bit
 * integers. The pair kernel needs AVX-512 (a plain C build of the same loops measured 2.5 against the WebAssembly
 * kernel's 1.4 ms a pair, so there is none: elsewhere `itn_ksg_pair` declines and the caller keeps WebAssembly); the
 * per-neuron preparation (`itn_ksg_prep`) is plain C.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/** Per-realm scratch, grown to the largest pair seen. */
typedef struct {
  int32_t n, cells;
  int32_t *start, *pxr, *pyr, *pw, *box, *qa, *qb, *r0, *r1;
  double *px, *py, *qx, *qy, *qr;
  uint8_t *heavy;
} itn_ksg_ctx;

void *itn_ksg_new(void) { return calloc(1, sizeof(itn_ksg_ctx)); }

void itn_ksg_free(void *p) {
  itn_ksg_ctx *c = (itn_ksg_ctx *)p;
  if (!c) return;
  free(c->start), free(c->pxr), free(c->pyr), free(c->pw), free(c->px), free(c->py);
  free(c->qx), free(c->qy), free(c->qr), free(c->qa), free(c->qb), free(c->box), free(c->heavy);
  free(c->r0), free(c->r1);
  free(c);
}

static int grow(itn_ksg_ctx *c, int32_t n, int32_t cells) {
  if (!c->r0) {
    // the rectangle's ranges: two a strip row at most (strips: at most 4096 a neuron)
    c->r0 = malloc(sizeof(int32_t) * (2 * 4096 + 2));
    c->r1 = malloc(sizeof(int32_t) * (2 * 4096 + 2));
    if (!c->r0 || !c->r1) return -1;
  }
  if (n > c->n) {
    free(c->pxr), free(c->pyr), free(c->pw), free(c->px), free(c->py), free(c->box);
    free(c->qx), free(c->qy), free(c->qr), free(c->qa), free(c->qb);
    const size_t m = (size_t)n + 8; // vector loads may read up to 7 entries past the last sample
    c->pxr = malloc(sizeof(int32_t) * m);
    c->pyr = malloc(sizeof(int32_t) * m);
    c->pw = malloc(sizeof(int32_t) * m);
    c->px = malloc(sizeof(double) * m);
    c->py = malloc(sizeof(double) * m);
    c->qx = malloc(sizeof(double) * m);
    c->qy = malloc(sizeof(double) * m);
    c->qr = malloc(sizeof(double) * m);
    c->qa = malloc(sizeof(int32_t) * m);
    c->qb = malloc(sizeof(int32_t) * m);
    c->box = malloc(sizeof(int32_t) * 4 * m);
    c->n = (c->pxr && c->pyr && c->pw && c->px && c->py && c->qx && c->qy && c->qr && c->qa && c->qb &&
            c->box)
               ? n
               : 0;
    if (!c->n) return -1;
  }
  if (cells > c->cells) {
    free(c->start), free(c->heavy);
    c->start = malloc(sizeof(int32_t) * ((size_t)cells + 1));
    c->heavy = malloc((size_t)cells + 1);
    c->cells = c->start && c->heavy ? cells : 0;
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

/** Inserts the stored samples `[q0, q1)` other than `self` into `b` (weights `pw`, or 1 each where it is NULL). */
static inline void scan(const double *px, const double *py, const int32_t *pw, int32_t q0, int32_t q1, int32_t self,
                        double x, double y, double *b) {
  for (int32_t q = q0; q < q1; q++) {
    const double ax = fabs(x - px[q]), ay = fabs(y - py[q]);
    if ((ax < b[2]) & (ay < b[2]) & (q != self)) insert3(b, ax > ay ? ax : ay, pw ? pw[q] : 1);
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define ITN_KSG_AVX512 __attribute__((target("avx2,bmi2,avx512f,avx512dq,avx512vl,avx512bw")))

/** Inserts `d` into each lane's sorted three smallest (`m1 <= m2 <= m3` lane by lane): a min/max network. */
ITN_KSG_AVX512 static inline void insert_lanes(__m512d *m1, __m512d *m2, __m512d *m3, __m512d d) {
  const __m512d t = _mm512_max_pd(*m1, d);
  *m1 = _mm512_min_pd(*m1, d);
  const __m512d u = _mm512_max_pd(*m2, t);
  *m2 = _mm512_min_pd(*m2, t);
  *m3 = _mm512_min_pd(*m3, u);
}

/**
 * The three smallest of the eight lanes' sorted lists into `b`: lists merged pairwise with partners 4, 2, 1 lanes
 * apart (the k-th smallest of two sorted lists is the least of `max(a_i, b_(k-i))`), so every lane ends with all three.
 */
ITN_KSG_AVX512 static inline void merge3(__m512d m1, __m512d m2, __m512d m3, double *b) {
  const __m512i swaps[3] = {_mm512_setr_epi64(4, 5, 6, 7, 0, 1, 2, 3), _mm512_setr_epi64(2, 3, 0, 1, 6, 7, 4, 5),
                            _mm512_setr_epi64(1, 0, 3, 2, 5, 4, 7, 6)};
  for (int r = 0; r < 3; r++) {
    const __m512d n1 = _mm512_permutexvar_pd(swaps[r], m1), n2 = _mm512_permutexvar_pd(swaps[r], m2),
                  n3 = _mm512_permutexvar_pd(swaps[r], m3);
    const __m512d c1 = _mm512_min_pd(m1, n1);
    const __m512d c2 = _mm512_min_pd(_mm512_min_pd(m2, n2), _mm512_max_pd(m1, n1));
    const __m512d c3 = _mm512_min_pd(_mm512_min_pd(m3, n3),
                                     _mm512_min_pd(_mm512_max_pd(m1, n2), _mm512_max_pd(m2, n1)));
    m1 = c1, m2 = c2, m3 = c3;
  }
  b[0] = _mm512_cvtsd_f64(m1), b[1] = _mm512_cvtsd_f64(m2), b[2] = _mm512_cvtsd_f64(m3);
}

/** How much longer than wide (in values) a cell is when its block reaches two strips along its narrow axis. */
#ifndef ITN_REACH
#define ITN_REACH 2.0
#endif

/**
 * The three smallest distances from `(x, y)` to the stored samples of the ranges `[q0[g], q1[g])` (g < rows, at
 * least 3 entries: empty ranges past the grid) other than `self`, eight candidates a vector: the first eight of the
 * first three ranges (masked) sorted lane by lane with a three-element network, any further ones inserted (min/max), then the lanes' sorted lists merged pairwise in three rounds (the
 * k-th smallest of two sorted lists is the least of `max(a_i, b_(k-i))`), so that every lane ends with all three.
 */
ITN_KSG_AVX512 static inline void nearest3(const double *px, const double *py, const int32_t *q0, const int32_t *q1,
                                           int32_t rows, int32_t mine, int32_t self, double x, double y, double *b) {
  const __m512d inf = _mm512_set1_pd(INFINITY), vx = _mm512_set1_pd(x), vy = _mm512_set1_pd(y);
  const __m512d sign = _mm512_castsi512_pd(_mm512_set1_epi64(0x7fffffffffffffffLL));
  const __m512i lane = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7), me = _mm512_set1_epi64(self);
  // row `mine` holds the sample itself: its lane is masked there
#define ITN_DIST(out_, q_, left_, g_)                                                                              \
  do {                                                                                                             \
    /* bzhi reads the low 8 bits of its index only: clamp to 8 first */                                           \
    __mmask8 v_ = (__mmask8)_bzhi_u32(0xff, (uint32_t)((left_) > 8 ? 8 : (left_)));                                                    \
    if ((g_) == mine) v_ &= ~_mm512_cmpeq_epi64_mask(_mm512_add_epi64(lane, _mm512_set1_epi64(q_)), me);          \
    const __m512d dx_ = _mm512_and_pd(_mm512_sub_pd(vx, _mm512_maskz_loadu_pd(v_, px + (q_))), sign);            \
    const __m512d dy_ = _mm512_and_pd(_mm512_sub_pd(vy, _mm512_maskz_loadu_pd(v_, py + (q_))), sign);            \
    (out_) = _mm512_mask_blend_pd(v_, inf, _mm512_max_pd(dx_, dy_));                                              \
  } while (0)
  // rows 0..2 (empty ones all +inf): the first eight of each, sorted lane by lane
  __m512d d0, d1, d2;
  ITN_DIST(d0, q0[0], q1[0] - q0[0], 0);
  ITN_DIST(d1, q0[1], q1[1] - q0[1], 1);
  ITN_DIST(d2, q0[2], q1[2] - q0[2], 2);
  const __m512d lo1 = _mm512_min_pd(d0, d1), hi1 = _mm512_max_pd(d0, d1);
  const __m512d lo2 = _mm512_min_pd(hi1, d2);
  __m512d m1 = _mm512_min_pd(lo1, lo2), m2 = _mm512_max_pd(lo1, lo2), m3 = _mm512_max_pd(hi1, d2);
  // the rest: rows 0..2 past their first eight, rows 3..
  for (int g = 0; g < rows; g++) {
    for (int32_t q = q0[g] + (g < 3 ? 8 : 0); q < q1[g]; q += 8) {
      __m512d d;
      ITN_DIST(d, q, q1[g] - q, g);
      insert_lanes(&m1, &m2, &m3, d);
    }
  }
#undef ITN_DIST
  merge3(m1, m2, m3, b);
}

/**
 * Inserts into the sorted three smallest `b` the stored samples of ranges `[q0[g], q1[g])` (g < count), eight
 * candidates a vector (none of them the sample itself), as {@link nearest3}.
 */
ITN_KSG_AVX512 static inline void insert_ranges(const double *px, const double *py, const int32_t *q0,
                                                const int32_t *q1, int32_t count, double x, double y, double *b) {
  const __m512d inf = _mm512_set1_pd(INFINITY), vx = _mm512_set1_pd(x), vy = _mm512_set1_pd(y);
  const __m512d sign = _mm512_castsi512_pd(_mm512_set1_epi64(0x7fffffffffffffffLL));
  __m512d m1 = _mm512_mask_mov_pd(inf, 1, _mm512_set1_pd(b[0]));
  __m512d m2 = _mm512_mask_mov_pd(inf, 1, _mm512_set1_pd(b[1]));
  __m512d m3 = _mm512_mask_mov_pd(inf, 1, _mm512_set1_pd(b[2]));
  for (int32_t g = 0; g < count; g++) {
    for (int32_t q = q0[g]; q < q1[g]; q += 8) {
      const int32_t left = q1[g] - q;
      const __mmask8 v = left >= 8 ? 0xff : (__mmask8)((1u << left) - 1);
      const __m512d dx = _mm512_and_pd(_mm512_sub_pd(vx, _mm512_maskz_loadu_pd(v, px + q)), sign);
      const __m512d dy = _mm512_and_pd(_mm512_sub_pd(vy, _mm512_maskz_loadu_pd(v, py + q)), sign);
      const __m512d d = _mm512_mask_blend_pd(v, inf, _mm512_max_pd(dx, dy));
      insert_lanes(&m1, &m2, &m3, d);
    }
  }
  merge3(m1, m2, m3, b);
}

/**
 * Eight count searches at once: per lane, the first position `m` in `[lo, hi]` where the predicate holds (kind 0,
 * a left border: `c - xs[m] < r`; kind 1, a right border: `m >= hi || xs[m] - c >= r`), from the fence window of
 * `c - r` (kind 0) or `c + r` (kind 1) and three halvings, as the scalar `ITN_FIRST`. Lanes whose window does not
 * check out or is longer than 8 are set in `*bad` for the caller to redo one by one.
 */
ITN_KSG_AVX512 static inline __m256i first8(int kind, const float *xs, const int32_t *fence, __m512d c, __m512d r,
                                             __m256i lo, __m256i hi, double flo, double fsc, int32_t M,
                                             __mmask8 *bad) {
  const __m512d v = kind == 0 ? _mm512_sub_pd(c, r) : _mm512_add_pd(c, r);
  const __m512d q = _mm512_mul_pd(_mm512_sub_pd(v, _mm512_set1_pd(flo)), _mm512_set1_pd(fsc));
  const __mmask8 pos = _mm512_cmp_pd_mask(q, _mm512_setzero_pd(), _CMP_GT_OQ);
  const __mmask8 below = _mm512_cmp_pd_mask(q, _mm512_set1_pd((double)(M - 1)), _CMP_LT_OQ);
  __m256i b = _mm512_maskz_cvttpd_epi32(pos & below, q);
  b = _mm256_mask_mov_epi32(b, pos & ~below, _mm256_set1_epi32(M - 1));
  // fence[b] and fence[b + 1] in one 64-bit gather (unaligned 8-byte loads), then split
  const __m512i ff = _mm512_i32gather_epi64(b, (const void *)fence, 4);
  const __m256i f0 = _mm512_cvtepi64_epi32(ff), f1 = _mm512_cvtepi64_epi32(_mm512_srli_epi64(ff, 32));
  __m256i a = _mm256_min_epi32(_mm256_max_epi32(f0, lo), hi);
  const __m256i z = _mm256_max_epi32(_mm256_min_epi32(f1, hi), a);
  const __m256i one = _mm256_set1_epi32(1);
#define ITN_PRED(mask_, idx_, keep_)                                                                              \
  do {                                                                                                            \
    const __mmask8 in_ = kind == 0 ? (keep_) : (__mmask8)((keep_) & _mm256_cmplt_epi32_mask((idx_), hi));        \
    const __m512d xv_ = _mm512_cvtps_pd(_mm256_mmask_i32gather_ps(_mm256_setzero_ps(), in_, (idx_), xs, 4));     \
    if (kind == 0) (mask_) = _mm512_mask_cmp_pd_mask(in_, _mm512_sub_pd(c, xv_), r, _CMP_LT_OQ);                   \
    else (mask_) = (__mmask8)(((keep_) & ~in_) | _mm512_mask_cmp_pd_mask(in_, _mm512_sub_pd(xv_, c), r, _CMP_GE_OQ)); \
  } while (0)
  // the window checks out when the position before it fails the predicate and its last position holds it
  const __mmask8 atLo = _mm256_cmpeq_epi32_mask(a, lo), atHi = _mm256_cmpeq_epi32_mask(z, hi);
  __mmask8 before, last;
  ITN_PRED(before, _mm256_sub_epi32(a, one), (__mmask8)~atLo);
  ITN_PRED(last, z, (__mmask8)~atHi);
  const __m256i len0 = _mm256_add_epi32(_mm256_sub_epi32(z, a), one);
  *bad = (__mmask8)((before & ~atLo) | (~last & ~atHi) | _mm256_cmpgt_epi32_mask(len0, _mm256_set1_epi32(8)));
  __m256i len = len0;
  for (int step = 0; step < 3; step++) {
    const __m256i h = _mm256_srli_epi32(len, 1);
    const __mmask8 some = _mm256_cmpgt_epi32_mask(h, _mm256_setzero_si256());
    const __m256i at = _mm256_mask_sub_epi32(a, some, _mm256_add_epi32(a, h), one);
    __mmask8 holds;
    ITN_PRED(holds, at, (__mmask8)(~*bad & some));
    // a += h where the predicate fails at a + h - 1
    a = _mm256_mask_add_epi32(a, (__mmask8)(~holds & some & ~*bad), a, h);
    len = _mm256_sub_epi32(len, h);
  }
#undef ITN_PRED
  return a;
}
#define ITN_KSG_HAVE_AVX512 1
#else
#define ITN_KSG_HAVE_AVX512 0
#define ITN_KSG_AVX512
#endif

/** The fence bucket of `v` (plugins/mi/ksg.ts `fenceBucket`): `trunc((v - lo) * scale)` clamped to `[0, M - 1]`. */
static inline int32_t bucket(double v, double lo, double scale, int32_t M) {
  const double q = (v - lo) * scale;
  return q > 0 ? (q < M - 1 ? (int32_t)q : M - 1) : 0;
}

/**
 * The first position `m` in `[lo, hi]` where `pred(m)` holds (`pred` false then true; true at `hi` unless `hi`
 * is past the range, where it is taken as true): the fence window `[f0, f1]` when its ends check out, else the
 * whole range, then branch-free halvings.
 */
#define ITN_FIRST(result, lo, hi, f0, f1, pred)                                                                     \
  do {                                                                                                              \
    int32_t a_ = (f0) < (lo) ? (lo) : ((f0) > (hi) ? (hi) : (f0));                                                  \
    int32_t z_ = (f1) > (hi) ? (hi) : ((f1) < a_ ? a_ : (f1));                                                       \
    if (!((a_ == (lo) || !(pred(a_ - 1))) && (z_ == (hi) || (pred(z_))))) a_ = (lo), z_ = (hi);                   \
    int32_t len_ = z_ - a_ + 1;                                                                                     \
    if (len_ > 8) {                                                                                                 \
      while (len_ > 8) {                                                                                            \
        const int32_t h_ = len_ >> 1;                                                                               \
        a_ += h_ * !(pred(a_ + h_ - 1));                                                                            \
        len_ -= h_;                                                                                                 \
      }                                                                                                             \
    }                                                                                                               \
    /* three fixed halvings take any window of at most 8 to one position (h_ = 0 steps test a_, harmlessly) */     \
    for (int step_ = 0; step_ < 3; step_++) {                                                                       \
      const int32_t h_ = len_ >> 1;                                                                                 \
      a_ += h_ * !(pred(a_ + h_ - (h_ > 0)));                                                                       \
      len_ -= h_;                                                                                                   \
    }                                                                                                               \
    (result) = a_;                                                                                                  \
  } while (0)


#if ITN_KSG_HAVE_AVX512
ITN_KSG_AVX512 static int32_t ksg_pair_avx512(void *p, int32_t n, const float *xv, const uint16_t *xc,
                                              const int32_t *xr, const float *xs, const int32_t *xe, int32_t Gx,
                                              const int32_t *xf, double xlo, double xsc, const float *yv,
                                              const uint16_t *yc, const int32_t *yr, const float *ys,
                                              const int32_t *ye, int32_t Gy, const int32_t *yf, double ylo,
                                              double ysc, const int32_t *dup, const int64_t *psi, int64_t *out) {
  itn_ksg_ctx *c = (itn_ksg_ctx *)p;
  const int32_t cells = Gx * Gy, M = n > 1 ? n : 1;
  if (grow(c, n, cells) != 0) return -1;
  // without heavy points (no `dup`) every stored sample is searched, in order: its count job is itself (the job
  // arrays are the stored samples' own), and no weights are kept
  int32_t *start = c->start, *pxr = c->pxr, *pyr = c->pyr, *pw = dup ? c->pw : NULL, *box = c->box;
  double *px = c->px, *py = c->py, *qx = dup ? c->qx : px, *qy = dup ? c->qy : py, *qr = c->qr;
  int32_t *qa = dup ? c->qa : pxr, *qb = dup ? c->qb : pyr;
  uint8_t *heavy = c->heavy;
  for (int32_t i = 0; i <= cells; i++) start[i] = 0, heavy[i] = 0;
  for (int32_t i = 0; i < n; i++) {
    if (dup && dup[i] < 0) continue;
    start[yc[i] * Gx + xc[i] + 1]++;
  }
  for (int32_t i = 0; i < cells; i++) start[i + 1] += start[i];
  for (int32_t i = 0; i < n; i++) {
    if (dup && dup[i] < 0) continue;
    const int32_t cell = yc[i] * Gx + xc[i], at = start[cell]++;
    px[at] = xv[i], py[at] = yv[i];
    pxr[at] = xr[i], pyr[at] = yr[i];
    if (dup) {
      pw[at] = dup[i] > 0 ? dup[i] : 1;
      if (pw[at] > 1) heavy[cell] = 1;
    }
  }
  for (int32_t i = cells; i > 0; i--) start[i] = start[i - 1];
  start[0] = 0;
  const int32_t N = start[cells];
  // pass 1: each sample's radius and the strips its counts may span, as count jobs (m of them)
  int32_t m = 0;
  for (int32_t cy = 0; cy < Gy; cy++) {
    const double wy = (double)ys[ye[cy + 1] - 1] - (double)ys[ye[cy]]; // the strip's span of values
    for (int32_t cx = 0; cx < Gx; cx++) {
      const int32_t c0 = start[cy * Gx + cx], c1 = start[cy * Gx + cx + 1];
      if (c0 == c1) continue;
      // the block: one strip each way, two along the narrow axis of a cell much longer than wide in values
      const double wx = (double)xs[xe[cx + 1] - 1] - (double)xs[xe[cx]];
      const int32_t rx = wy > ITN_REACH * wx ? 2 : 1, ry = wx > ITN_REACH * wy ? 2 : 1;
      const int32_t y0 = cy >= ry ? cy - ry : 0, y1 = cy + ry < Gy ? cy + ry : Gy - 1;
      const double yLoV = y0 > 0 ? ys[ye[y0] - 1] : -INFINITY, yHiV = y1 < Gy - 1 ? ys[ye[y1 + 1]] : INFINITY;
      const int32_t x0 = cx >= rx ? cx - rx : 0, x1 = cx + rx < Gx ? cx + rx : Gx - 1;
      const double xLoV = x0 > 0 ? xs[xe[x0] - 1] : -INFINITY, xHiV = x1 < Gx - 1 ? xs[xe[x1 + 1]] : INFINITY;
      int32_t q0[5] = {0, 0, 0, 0, 0}, q1[5] = {0, 0, 0, 0, 0}, rows = 0, near = 0; // rows past the edge: empty
      for (int32_t gy = y0; gy <= y1; gy++, rows++) {
        q0[rows] = start[gy * Gx + x0], q1[rows] = start[gy * Gx + x1 + 1];
        if (dup) {
          for (int32_t gx = x0; gx <= x1; gx++) near |= heavy[gy * Gx + gx];
        }
      }
      for (int32_t s = c0; s < c1; s++) {
        if (dup && pw[s] > 1) continue; // a heavy point's representative: its terms are the caller's
        const double x = px[s], y = py[s];
        double b[3] = {INFINITY, INFINITY, INFINITY};
        if (!near) nearest3(px, py, q0, q1, rows, cy - y0, s, x, y, b);
        else
          for (int32_t g = 0; g < rows; g++) scan(px, py, pw, q0[g], q1[g], s, x, y, b);
        double kth = b[2];
        const double bx = x - xLoV < xHiV - x ? x - xLoV : xHiV - x, by = y - yLoV < yHiV - y ? y - yLoV : yHiV - y;
        int32_t X0 = x0, X1 = x1, Y0 = y0, Y1 = y1;
        if (!(kth <= (bx < by ? bx : by))) {
          // the 3rd neighbour may lie outside the block: scan the rectangle of strips that can hold nearer samples
          while (X0 > 0 && x - xs[xe[X0] - 1] < kth) X0--;
          while (X1 < Gx - 1 && xs[xe[X1 + 1]] - x < kth) X1++;
          while (Y0 > 0 && y - ys[ye[Y0] - 1] < kth) Y0--;
          while (Y1 < Gy - 1 && ys[ye[Y1 + 1]] - y < kth) Y1++;
          // the rectangle's ranges outside the block (none of them holds the sample itself)
          int32_t *r0 = c->r0, *r1 = c->r1, count = 0, far = 0; // far: a heavy point lies in the rectangle
          for (int32_t gy = Y0; gy <= Y1; gy++) {
            const int32_t row = gy * Gx;
            if (gy < y0 || gy > y1) r0[count] = start[row + X0], r1[count++] = start[row + X1 + 1];
            else {
              if (X0 < x0) r0[count] = start[row + X0], r1[count++] = start[row + x0];
              if (X1 > x1) r0[count] = start[row + x1 + 1], r1[count++] = start[row + X1 + 1];
            }
            for (int32_t gx = X0; gx <= X1 && dup && !far; gx++) far |= heavy[row + gx];
          }
          if (!far) insert_ranges(px, py, r0, r1, count, x, y, b);
          else {
            for (int32_t g = 0; g < count; g++) scan(px, py, pw, r0[g], r1[g], -1, x, y, b);
          }
          kth = b[2];
        }
        // the sample's count job, in the order of the searched samples
        qr[m] = kth > 0 ? kth : DBL_TRUE_MIN;
        if (dup) qx[m] = x, qy[m] = y, qa[m] = pxr[s], qb[m] = pyr[s];
        box[m] = xe[X0], box[N + m] = xe[X1 + 1], box[2 * N + m] = ye[Y0], box[3 * N + m] = ye[Y1 + 1];
        m++;
      }
    }
  }
  // pass 2: the counts, in a straight loop, eight jobs a step (the last few one by one)
  int64_t total = 0;
  int32_t j0 = 0;
  {
    __m512i acc = _mm512_setzero_si512();
    for (; j0 + 8 <= m; j0 += 8) {
      const __m512d x = _mm512_loadu_pd(qx + j0), y = _mm512_loadu_pd(qy + j0), r = _mm512_loadu_pd(qr + j0);
      const __m256i ax = _mm256_loadu_si256((const __m256i *)(qa + j0));
      const __m256i ay = _mm256_loadu_si256((const __m256i *)(qb + j0));
      const __m256i lx = _mm256_loadu_si256((const __m256i *)(box + j0));
      const __m256i hx = _mm256_loadu_si256((const __m256i *)(box + N + j0));
      const __m256i ly = _mm256_loadu_si256((const __m256i *)(box + 2 * N + j0));
      const __m256i hy = _mm256_loadu_si256((const __m256i *)(box + 3 * N + j0));
      const __m256i one = _mm256_set1_epi32(1);
      __mmask8 b1, b2, b3, b4;
      __m256i L1 = first8(0, xs, xf, x, r, lx, ax, xlo, xsc, M, &b1);
      __m256i R1 = first8(1, xs, xf, x, r, _mm256_add_epi32(ax, one), hx, xlo, xsc, M, &b2);
      __m256i L2 = first8(0, ys, yf, y, r, ly, ay, ylo, ysc, M, &b3);
      __m256i R2 = first8(1, ys, yf, y, r, _mm256_add_epi32(ay, one), hy, ylo, ysc, M, &b4);
      if (b1 | b2 | b3 | b4) {
        // lanes whose window did not check out: one by one, over the whole range
        int32_t l1[8], r1[8], l2[8], r2[8];
        _mm256_storeu_si256((__m256i *)l1, L1), _mm256_storeu_si256((__m256i *)r1, R1);
        _mm256_storeu_si256((__m256i *)l2, L2), _mm256_storeu_si256((__m256i *)r2, R2);
        for (int k = 0; k < 8; k++) {
          const int32_t j = j0 + k;
          const double cx_ = qx[j], cy_ = qy[j], rr = qr[j];
          const int32_t hxj = box[N + j], hyj = box[3 * N + j];
#define PL1(q) (cx_ - (double)xs[q] < rr)
#define PR1(q) ((q) >= hxj || (double)xs[q] - cx_ >= rr)
#define PL2(q) (cy_ - (double)ys[q] < rr)
#define PR2(q) ((q) >= hyj || (double)ys[q] - cy_ >= rr)
          if (b1 >> k & 1) ITN_FIRST(l1[k], box[j], qa[j], box[j], box[j], PL1);
          if (b2 >> k & 1) ITN_FIRST(r1[k], qa[j] + 1, hxj, qa[j] + 1, qa[j] + 1, PR1);
          if (b3 >> k & 1) ITN_FIRST(l2[k], box[2 * N + j], qb[j], box[2 * N + j], box[2 * N + j], PL2);
          if (b4 >> k & 1) ITN_FIRST(r2[k], qb[j] + 1, hyj, qb[j] + 1, qb[j] + 1, PR2);
#undef PL1
#undef PR1
#undef PL2
#undef PR2
        }
        L1 = _mm256_loadu_si256((const __m256i *)l1), R1 = _mm256_loadu_si256((const __m256i *)r1);
        L2 = _mm256_loadu_si256((const __m256i *)l2), R2 = _mm256_loadu_si256((const __m256i *)r2);
      }
      acc = _mm512_add_epi64(acc, _mm512_i32gather_epi64(_mm256_sub_epi32(R1, L1), psi, 8));
      acc = _mm512_add_epi64(acc, _mm512_i32gather_epi64(_mm256_sub_epi32(R2, L2), psi, 8));
    }
    total += _mm512_reduce_add_epi64(acc);
  }
  for (int32_t j = j0; j < m; j++) {
    const double x = qx[j], y = qy[j], r = qr[j];
    const int32_t ax = qa[j], ay = qb[j], lx = box[j], hx = box[N + j], ly = box[2 * N + j], hy = box[3 * N + j];
    // left borders: the first position with x - xs[m] < r in [lx, ax]; right: the first with xs[m] - x >= r in
    // (ax, hx] (hx: none)
    int32_t L1, R1, L2, R2;
    const int32_t bl1 = bucket(x - r, xlo, xsc, M), br1 = bucket(x + r, xlo, xsc, M);
    const int32_t bl2 = bucket(y - r, ylo, ysc, M), br2 = bucket(y + r, ylo, ysc, M);
#define PL1(q) (x - (double)xs[q] < r)
#define PR1(q) ((q) >= hx || (double)xs[q] - x >= r)
#define PL2(q) (y - (double)ys[q] < r)
#define PR2(q) ((q) >= hy || (double)ys[q] - y >= r)
    ITN_FIRST(L1, lx, ax, xf[bl1], xf[bl1 + 1], PL1);
    ITN_FIRST(R1, ax + 1, hx, xf[br1], xf[br1 + 1], PR1);
    ITN_FIRST(L2, ly, ay, yf[bl2], yf[bl2 + 1], PL2);
    ITN_FIRST(R2, ay + 1, hy, yf[br2], yf[br2 + 1], PR2);
#undef PL1
#undef PR1
#undef PL2
#undef PR2
    total += psi[R1 - L1] + psi[R2 - L2];
  }
  out[0] = total;
  return 0;
}
#endif

/** plugins/kernels/native/infotap_native.c: whether the CPU has the AVX-512 the kernels need. */
int32_t itn_supported(void);

/**
 * The exact sum over the samples with `dup[i] == 0` (all when `dup` is NULL) of `psi[n_x + 1] + psi[n_y + 1]`
 * (`psi`: fixed-point terms, plugins/mi/ksg.ts `fixedPsi`), into `out[0]`; samples with `dup[i] > 0` are stored
 * as `dup[i]` identical neighbours, those with `dup[i] < 0` left out (their terms are the caller's). Per neuron:
 * values `xv`, strip `xc` and sorted position `xr` of each sample, sorted values `xs`, strip edges `xe` (`Gx + 1`),
 * fence table `xf` (`n + 1`) with its origin and scale. Returns 0, or -1 where the scratch memory could not be had or
 * the CPU lacks AVX-512 (nothing done: the caller counts another way).
 *
 * Two passes, as the WebAssembly kernel: the search stores each sample's radius and the strips its counts may span
 * (eight candidates a step; the scalar loop of the JavaScript kernel, with weights, beside a heavy point), then the
 * counts from the fence tables' windows (checked at their ends, else the whole range) by branch-free halvings.
 */
int32_t itn_ksg_pair(void *p, int32_t n, const float *xv, const uint16_t *xc, const int32_t *xr, const float *xs,
                     const int32_t *xe, int32_t Gx, const int32_t *xf, double xlo, double xsc, const float *yv,
                     const uint16_t *yc, const int32_t *yr, const float *ys, const int32_t *ye, int32_t Gy,
                     const int32_t *yf, double ylo, double ysc, const int32_t *dup, const int64_t *psi, int64_t *out) {
#if ITN_KSG_HAVE_AVX512
  if (itn_supported())
    return ksg_pair_avx512(p, n, xv, xc, xr, xs, xe, Gx, xf, xlo, xsc, yv, yc, yr, ys, ye, Gy, yf, ylo, ysc, dup, psi,
                           out);
#endif
  (void)p, (void)n, (void)xv, (void)xc, (void)xr, (void)xs, (void)xe, (void)Gx, (void)xf, (void)xlo, (void)xsc;
  (void)yv, (void)yc, (void)yr, (void)ys, (void)ye, (void)Gy, (void)yf, (void)ylo, (void)ysc, (void)dup, (void)psi;
  (void)out;
  return -1;
}

/**
 * One neuron's preparation for the KSG kernels (plugins/mi/ksg.ts `prepNeuron`, float32 values), the same arrays:
 * `sorted` values, `rank` (position in `sorted`, ties broken by sample index), `group` (first position of the
 * sample's value) and `tie` (its tie group's size), the grid strips (`cell` of each sample, `edge`: `G + 1` first
 * positions, `G` from `gridSize`; strips cut only between tie groups) and the fence table (`n + 1` entries) with
 * `meta = [strips, fenceLo, fenceScale]`. The order is an LSD radix sort of the values' order-preserving 32 bits
 * (-0 as +0), stable, so equal values keep the order of their sample indices. Returns 0, or -1 without memory.
 */
int32_t itn_ksg_prep(int32_t n, const float *vals, float *sorted, int32_t *rank, int32_t *group, int32_t *tie,
                     uint16_t *cell, int32_t *edge, int32_t *fence, double *meta) {
  uint32_t *key = malloc(sizeof(uint32_t) * 2 * ((size_t)n + 1));
  int32_t *idx = malloc(sizeof(int32_t) * 2 * ((size_t)n + 1));
  int32_t *used = calloc((size_t)n + 1, sizeof(int32_t));
  uint16_t *stripOf = malloc(sizeof(uint16_t) * ((size_t)n + 1));
  if (!key || !idx || !used || !stripOf) {
    free(key), free(idx), free(used), free(stripOf);
    return -1;
  }
  uint32_t *k0 = key, *k1 = key + n + 1;
  int32_t *i0 = idx, *i1 = idx + n + 1;
  for (int32_t i = 0; i < n; i++) {
    uint32_t u;
    const float v = vals[i];
    memcpy(&u, &v, 4);
    if (v == 0) u = 0; // -0 ranks as +0 (equal values)
    k0[i] = u >= 0x80000000u ? ~u : u | 0x80000000u;
    i0[i] = i;
  }
  for (int shift = 0; shift < 32; shift += 8) {
    int32_t count[257] = {0};
    for (int32_t i = 0; i < n; i++) count[((k0[i] >> shift) & 255) + 1]++;
    for (int b = 0; b < 256; b++) count[b + 1] += count[b];
    for (int32_t i = 0; i < n; i++) {
      const int32_t at = count[(k0[i] >> shift) & 255]++;
      k1[at] = k0[i], i1[at] = i0[i];
    }
    uint32_t *tk = k0;
    k0 = k1, k1 = tk;
    int32_t *ti = i0;
    i0 = i1, i1 = ti;
  }
  int32_t start = 0;
  for (int32_t p = 0; p < n; p++) {
    const int32_t i = i0[p];
    sorted[p] = vals[i];
    if (p > 0 && sorted[p] != sorted[p - 1]) start = p;
    rank[i] = p, group[i] = start;
    used[start]++;
  }
  for (int32_t i = 0; i < n; i++) tie[i] = used[group[i]];
  // strips of about n / G samples, cut only between tie groups
  const double half = sqrt(n / 2.0);
  const int32_t G = half >= 4096 ? 4096 : (half < 1 ? 1 : (int32_t)floor(half));
  const double target = (double)n / G;
  for (int32_t g = 0; g <= G; g++) edge[g] = n;
  edge[0] = 0;
  int32_t strip = 0;
  double inStrip = 0;
  for (int32_t r = 0; r < n;) {
    const int32_t size = used[r];
    if (inStrip >= target && strip < G - 1) edge[++strip] = r, inStrip = 0;
    for (const int32_t end = r + size; r < end; r++) stripOf[r] = (uint16_t)strip;
    inStrip += size;
  }
  for (int32_t i = 0; i < n; i++) cell[i] = stripOf[rank[i]];
  // the fence table: n buckets between the 0.5% and 99.5% quantiles
  const int32_t M = n > 1 ? n : 1;
  const double lo = n > 0 ? sorted[(int32_t)floor(0.005 * (n - 1))] : 0;
  const double hi = n > 0 ? sorted[(int32_t)ceil(0.995 * (n - 1))] : 0;
  double scale = hi > lo ? M / (hi - lo) : 0;
  if (!isfinite(scale)) scale = 0;
  int32_t j = 0;
  for (int32_t p = 0; p < n; p++) {
    const int32_t b = bucket(sorted[p], lo, scale, M);
    while (j <= b) fence[j++] = p;
  }
  while (j <= M) fence[j++] = n;
  meta[0] = n > 0 ? strip + 1 : 0, meta[1] = lo, meta[2] = scale;
  free(key), free(idx), free(used), free(stripOf);
  return 0;
}
