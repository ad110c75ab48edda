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

ITN_KSG_AVX512 static inline double hmin(__m512d v) { return _mm512_reduce_min_pd(v); }

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


#define ITN_BODY_NAME ksg_pair_generic
#define ITN_BODY_512 0
#define ITN_BODY_ATTR
#include "ksg_body.h"
#undef ITN_BODY_NAME
#undef ITN_BODY_512
#undef ITN_BODY_ATTR
#if ITN_KSG_HAVE_AVX512
#define ITN_BODY_NAME ksg_pair_avx512
#define ITN_BODY_512 1
#define ITN_BODY_ATTR ITN_KSG_AVX512
#include "ksg_body.h"
#undef ITN_BODY_NAME
#undef ITN_BODY_512
#undef ITN_BODY_ATTR
#endif

/**
 * The exact sum over the samples with `dup[i] == 0` (all when `dup` is NULL) of `psi[n_x + 1] + psi[n_y + 1]`
 * (`psi`: fixed-point terms, plugins/mi/ksg.ts `fixedPsi`), into `out[0]`; samples with `dup[i] > 0` are stored
 * as `dup[i]` identical neighbours, those with `dup[i] < 0` left out (their terms are the caller's). Per neuron:
 * values `xv`, strip `xc` and sorted position `xr` of each sample, sorted values `xs`, strip edges `xe` (`Gx + 1`),
 * fence table `xf` (`n + 1`) with its origin and scale. Returns 0, or -1 where the scratch memory could not be had.
 *
 * Two passes, as the WebAssembly kernel: the search stores each sample's radius and the strips its counts may span
 * (AVX-512 where the CPU has it: eight candidates a step; the scalar loop of the JavaScript kernel for samples near
 * a heavy point and for the rectangle beyond the 3 x 3 block), then the counts from the fence tables' windows
 * (checked at their ends, else the whole range) by branch-free halvings.
 */
int32_t itn_ksg_pair(void *p, int32_t n, const float *xv, const uint16_t *xc, const int32_t *xr, const float *xs,
                     const int32_t *xe, int32_t Gx, const int32_t *xf, double xlo, double xsc, const float *yv,
                     const uint16_t *yc, const int32_t *yr, const float *ys, const int32_t *ye, int32_t Gy,
                     const int32_t *yf, double ylo, double ysc, const int32_t *dup, const int64_t *psi,
                     int32_t avx512, int64_t *out) {
#if ITN_KSG_HAVE_AVX512
  if (avx512)
    return ksg_pair_avx512(p, n, xv, xc, xr, xs, xe, Gx, xf, xlo, xsc, yv, yc, yr, ys, ye, Gy, yf, ylo, ysc, dup, psi,
                           out);
#else
  (void)avx512;
#endif
  return ksg_pair_generic(p, n, xv, xc, xr, xs, xe, Gx, xf, xlo, xsc, yv, yc, yr, ys, ye, Gy, yf, ylo, ysc, dup, psi,
                          out);
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
