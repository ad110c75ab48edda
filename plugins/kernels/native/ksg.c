/*
 * Native kernel of the KSG pair (k = 3, float32 values), loaded through Deno's FFI (plugins/kernels/native/native.ts)
 * and called by plugins/mi/ksg.ts `ksgPair` (and, a chunk of pairs a call, `ksgPairs`) in place of its WebAssembly
 * kernel. The same counts as the JavaScript kernel there, found another way (docs/internals.md, "Native kernels"): the
 * heavy points found from the neurons' tie groups, the samples placed into the grid of the two neurons' strips; pass 1,
 * each sample's three nearest other samples (Chebyshev, float64 distances of the float32 values, representatives of
 * heavy points counted with their multiplicity), a strip row's samples eight at a time, one a lane, against the union
 * of their blocks, the searched rectangle grown a strip at a time on the sides some lane's 3rd distance reaches beyond;
 * pass 2, n_x and n_y from the sorted marginals, eight samples at a time, each border from an eight-position window
 * after its fence bucket's first position; the fixed-point psi terms summed as 64-bit integers. Two forms of the
 * passes: AVX-512 intrinsics where the CPU has them, else plain C over arrays of eight lanes that the compiler
 * vectorises (AVX2 on x86-64, NEON on ARM; `itn_ksg_kernel` says which runs); the per-neuron preparation
 * (`itn_ksg_prep`) is plain C.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/** Per-realm scratch, grown to the largest pair seen. */
typedef struct {
  int32_t n, cells;
  int32_t *start, *pcx, *pw, *r0, *r1, *dup, *hv, *hc;
  uint64_t *hk;
  double *px, *py, *qr, *hx, *hy;
  int32_t H;
  uint8_t *heavy;
} itn_ksg_ctx;

void *itn_ksg_new(void) { return calloc(1, sizeof(itn_ksg_ctx)); }

void itn_ksg_free(void *p) {
  itn_ksg_ctx *c = (itn_ksg_ctx *)p;
  if (!c) return;
  free(c->start), free(c->pw), free(c->px), free(c->py), free(c->hx), free(c->hy);
  free(c->dup), free(c->hk), free(c->hv), free(c->hc);
  free(c->qr), free(c->heavy), free(c->pcx);
  free(c->r0), free(c->r1);
  free(c);
}

__attribute__((unused)) static int grow(itn_ksg_ctx *c, int32_t n, int32_t cells) {
  if (!c->r0) {
    // the rectangle's ranges: two a strip row at most (strips: at most 4096 a neuron)
    c->r0 = malloc(sizeof(int32_t) * (2 * 4096 + 2));
    c->r1 = malloc(sizeof(int32_t) * (2 * 4096 + 2));
    if (!c->r0 || !c->r1) return -1;
  }
  if (n > c->n) {
    free(c->pw), free(c->px), free(c->py), free(c->hx), free(c->hy);
    free(c->qr), free(c->pcx), free(c->dup), free(c->hk), free(c->hv), free(c->hc);
    const size_t m = (size_t)n + 8; // vector loads may read up to 7 entries past the last sample
    // the heavy points' hash table: a power of two of at least twice the tied samples (at most 4n)
    const size_t T = 4 * (size_t)n + 4;
    c->dup = malloc(sizeof(int32_t) * m);
    c->hk = malloc(sizeof(uint64_t) * T);
    c->hv = malloc(sizeof(int32_t) * T);
    c->hc = malloc(sizeof(int32_t) * T);
    c->pw = malloc(sizeof(int32_t) * m);
    c->px = malloc(sizeof(double) * m);
    c->py = malloc(sizeof(double) * m);
    c->qr = malloc(sizeof(double) * m);
    c->hx = malloc(sizeof(double) * m);
    c->hy = malloc(sizeof(double) * m);
    c->pcx = malloc(sizeof(int32_t) * m);
    c->n = c->pw && c->px && c->py && c->qr && c->pcx && c->hx && c->hy && c->dup && c->hk && c->hv && c->hc ? n : 0;
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

/** Fence buckets a sample (plugins/mi/ksg.ts `FENCE_BUCKETS`). */
#define ITN_FENCE_BUCKETS 1

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define ITN_KSG_AVX512 __attribute__((target("avx2,bmi2,avx512f,avx512dq,avx512vl,avx512bw,avx512cd")))

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

/**
 * Inserts into the sorted three smallest `b` the stored samples of ranges `[q0[g], q1[g])` (g < count), eight
 * candidates a vector (none of them the sample itself), lanes' lists merged as {@link merge3}.
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


#define ITN_KSG_HAVE_AVX512 1
#else
#define ITN_KSG_HAVE_AVX512 0
#define ITN_KSG_AVX512
#endif


/**
 * The first position `m` in `[lo, hi]` where `pred(m)` holds (`pred` false then true, and true at `hi`): halvings
 * of the whole range (the counts' borders that a window could not place, where `n < 8`).
 */
#define ITN_FIRST(result, lo, hi, pred)                                                                             \
  do {                                                                                                              \
    int32_t a_ = (lo), len_ = (hi) - (lo) + 1;                                                                      \
    while (len_ > 1) {                                                                                              \
      const int32_t h_ = len_ >> 1;                                                                                 \
      a_ += h_ * !(pred(a_ + h_ - 1));                                                                              \
      len_ -= h_;                                                                                                   \
    }                                                                                                               \
    (result) = a_;                                                                                                  \
  } while (0)


#ifdef ITN_KSG_PROFILE
#include <x86intrin.h>
static uint64_t prof[8];
uint64_t *itn_ksg_times(void) { return prof; }
#define PROF(i) (prof[i] += __rdtsc())
#define PROFN(i) (prof[i] -= __rdtsc())
#define PROFC(i, v) (prof[i] += (v))
#else
#define PROF(i)
#define PROFN(i)
#define PROFC(i, v)
#endif

/** The first position in `[lo, hi]` where `pred` holds (true at `hi`), known to fail at `w` (`lo - 1 <= w < hi`). */
#define ITN_UP(result, lo, hi, w, pred)                                                                             \
  do {                                                                                                              \
    int32_t w_ = (w), z_;                                                                                           \
    for (int32_t s_ = 1;; s_ *= 2) {                                                                                \
      z_ = w_ + s_;                                                                                                 \
      if (z_ >= (hi)) {                                                                                             \
        z_ = (hi);                                                                                                  \
        break;                                                                                                      \
      }                                                                                                             \
      if (pred(z_)) break;                                                                                          \
      w_ = z_;                                                                                                      \
    }                                                                                                               \
    ITN_FIRST(result, w_ + 1, z_, pred);                                                                            \
  } while (0)

/** The first position in `[lo, hi]` where `pred` holds, known to hold at `z` (`lo <= z <= hi`). */
#define ITN_DOWN(result, lo, hi, z, pred)                                                                           \
  do {                                                                                                              \
    int32_t z_ = (z), w_;                                                                                           \
    for (int32_t s_ = 1;; s_ *= 2) {                                                                                \
      w_ = z_ - s_;                                                                                                 \
      if (w_ < (lo)) {                                                                                              \
        w_ = (lo) - 1;                                                                                              \
        break;                                                                                                      \
      }                                                                                                             \
      if (!pred(w_)) break;                                                                                         \
      z_ = w_;                                                                                                      \
    }                                                                                                               \
    ITN_FIRST(result, w_ + 1, z_, pred);                                                                            \
  } while (0)



/** The most heavy points the vector search takes into every group's lists (more: one lane at a time). */
#define ITN_FEW_HEAVY 16

/** The grid and the stored samples of one pair, as the search reads them. */
typedef struct {
  const int32_t *start, *xe, *ye, *pw;
  const uint8_t *heavy;
  const float *xs, *ys;
  const double *px, *py;
  int32_t Gx, Gy, N, n;
  /** The heavy points (at most ITN_FEW_HEAVY: taken into every group's lists before its scan), or `H < 0`. */
  const double *hx, *hy;
  int32_t H;
} itn_grid;

/** Whether a heavy point lies in the cells `[x0, x1] x [y0, y1]` (never without heavy points). */
static inline int any_heavy(const itn_grid *g, int32_t x0, int32_t x1, int32_t y0, int32_t y1) {
  int h = 0;
  if (g->pw)
    for (int32_t gy = y0; gy <= y1; gy++)
      for (int32_t gx = x0; gx <= x1; gx++) h |= g->heavy[gy * g->Gx + gx];
  return h;
}

/**
 * The samples bucketed by cell (strip rows, then strips across) into the scratch (values as float64, strip across;
 * `start`: each cell's first, `cells + 1`); those with `dup < 0` left out, weights and heavy points kept.
 * Without heavy points taken in x's sorted order (`xo`), each appended to its strip row: a row's samples then lie
 * in strip order, and the writes go to as many places as there are rows (to each cell's next place, in sample order,
 * they went to many more, scattered over the cache: 19 -> 13 ticks a sample). Apart from the search, so that its
 * loops keep their pointers in registers. On the way, both fence tables and y's sorted values are fetched into the
 * cache for the counts (their reads are gathers, which the hardware does not prefetch: 51 -> 43 ticks a sample
 * there), and y's values for this placement (read in x's order).
 */
__attribute__((noinline)) static void place(itn_ksg_ctx *c, int32_t n, int32_t cells, int32_t Gx, const float *xv,
                                            const uint16_t *xc, const int32_t *xo, const float *xs,
                                            const int32_t *xe, const float *yv, const uint16_t *yc,
                                            const float *ys, const int32_t *yf, const int32_t *dup,
                                            const int32_t *xf) {
  int32_t *restrict start = c->start, *restrict pcx = c->pcx;
  int32_t *restrict at = c->r0; // each strip row's next place (at most 4096 rows)
  double *restrict px = c->px, *restrict py = c->py;
  const int32_t Gy = cells / Gx;
  memset(start, 0, sizeof(int32_t) * ((size_t)cells + 1));
  memset(c->heavy, 0, (size_t)cells + 1);
  c->H = 0;
  for (int32_t i = 0; i < n; i++) {
    if ((i & 15) == 0) __builtin_prefetch(yv + i); // read below in x's order
    start[yc[i] * Gx + xc[i] + 1] += !dup || dup[i] >= 0;
  }
  for (int32_t i = 0; i < cells; i++) start[i + 1] += start[i];
  for (int32_t r = 0; r < Gy; r++) at[r] = start[r * Gx];
  if (!dup) {
    for (int32_t p = 0, sx = 0; p < n; p++) {
      if ((p & (16 / ITN_FENCE_BUCKETS - 1)) == 0) __builtin_prefetch(xf + ITN_FENCE_BUCKETS * p), __builtin_prefetch(yf + ITN_FENCE_BUCKETS * p);
      if ((p & 15) == 0) __builtin_prefetch(ys + p);
      while (p >= xe[sx + 1]) sx++; // the strip of position p
      const int32_t i = xo[p], s = at[yc[i]]++;
      px[s] = xs[p], py[s] = yv[i];
      pcx[s] = sx;
    }
  } else {
    // with heavy points, in sample order (measured faster there: which samples are left out is unpredictable)
    for (int32_t i = 0; i < n; i++) {
      if ((i & (16 / ITN_FENCE_BUCKETS - 1)) == 0) __builtin_prefetch(xf + ITN_FENCE_BUCKETS * i), __builtin_prefetch(yf + ITN_FENCE_BUCKETS * i);
      if ((i & 15) == 0) __builtin_prefetch(ys + i);
      if (dup[i] < 0) continue;
      const int32_t cell = yc[i] * Gx + xc[i], s = start[cell]++;
      px[s] = xv[i], py[s] = yv[i];
      pcx[s] = xc[i];
      c->pw[s] = dup[i] > 0 ? dup[i] : 1;
      if (dup[i] > 1) c->heavy[cell] = 1, c->hx[c->H] = xv[i], c->hy[c->H] = yv[i], c->H++;
    }
    memmove(start + 1, start, sizeof(int32_t) * (size_t)cells);
    start[0] = 0;
  }
}

/**
 * The heavy points of a pair whose neurons both have tie groups of more than 3 samples (`xg`, `yg`: each sample's
 * tie group start; `xt`, `yt`: its size), as plugins/mi/ksg.ts `duplicates`: per sample, the multiplicity of its
 * point for the first of more than 3 samples sharing both values, -1 for the others, 0 otherwise (a hash table of
 * the (group, group) keys). Their terms `psi[tie_x] + psi[tie_y]` (n_x, n_y: their tie groups less themselves) into
 * `*terms`; returns the `dup` array, or NULL where there is no such point.
 */
static const int32_t *heavy_points(itn_ksg_ctx *c, int32_t n, const int32_t *xg, const int32_t *xt,
                                   const int32_t *yg, const int32_t *yt, const int64_t *psi, int64_t *terms) {
  int32_t m = 0;
  for (int32_t i = 0; i < n; i++) m += (xt[i] > 3) & (yt[i] > 3);
  *terms = 0;
  if (m == 0) return NULL;
  size_t T = 2;
  while (T < 2 * (size_t)m) T *= 2;
  uint64_t *hk = c->hk;
  int32_t *hv = c->hv, *hc = c->hc, *dup = c->dup;
  memset(hk, 0xff, sizeof(uint64_t) * T); // empty: all ones (no key: group starts are below 2^31)
#define ITN_SLOT(i_, h_)                                                                                            \
  do {                                                                                                              \
    const uint64_t key_ = (uint64_t)(uint32_t)xg[i_] << 32 | (uint32_t)yg[i_];                                      \
    h_ = (size_t)((key_ * 0x9E3779B97F4A7C15ull) >> 32) & (T - 1);                                                  \
    while (hk[h_] != key_ && hk[h_] != ~0ull) h_ = (h_ + 1) & (T - 1);                                              \
    if (hk[h_] == ~0ull) hk[h_] = key_, hv[h_] = i_, hc[h_] = 0;                                                    \
  } while (0)
  for (int32_t i = 0; i < n; i++) {
    dup[i] = 0;
    if (xt[i] <= 3 || yt[i] <= 3) continue;
    size_t h;
    ITN_SLOT(i, h);
    hc[h]++;
  }
  int any = 0;
  int64_t t = 0;
  for (int32_t i = 0; i < n; i++) {
    if (xt[i] <= 3 || yt[i] <= 3) continue;
    size_t h;
    ITN_SLOT(i, h);
    if (hc[h] <= 3) continue; // fewer than 4 at this point: ordinary samples
    dup[i] = hv[h] == i ? hc[h] : -1;
    t += psi[xt[i]] + psi[yt[i]], any = 1;
  }
#undef ITN_SLOT
  *terms = t;
  return any ? dup : NULL;
}

/**
 * A count's borders, for `vs` the sorted values, `c` the sample's value and `rr` its radius: the left border is the
 * first sorted position m where `c - vs[m] < rr` (it holds at the sample's own position and at n - 1, whose value is
 * the largest); the right border the first where `m == n || vs[m] - c >= rr` (it fails at 0 and at the sample's own
 * position).
 */
#define PL(m) (c - (double)vs[m] < rr)
#define PR(m) ((m) >= n || (double)vs[m] - c >= rr)

/** The generic kernel's target: AVX2 on x86-64 (checked at run time), the compiler's default elsewhere. */
#if defined(__x86_64__) && defined(__GNUC__)
#define ITN_GENERIC __attribute__((target("avx2,bmi2")))
#else
#define ITN_GENERIC
#endif

/** The generic kernel's pass 2 (below), also the AVX-512 kernel's where `n < 8`. */
ITN_GENERIC __attribute__((noinline)) static int64_t counts_g(int32_t N, int32_t n, int32_t M, const double *qr,
                                                              const double *px, const double *py, const float *xs,
                                                              const int32_t *xf, double xlo, double xsc,
                                                              const float *ys, const int32_t *yf, double ylo,
                                                              double ysc, const int64_t *psi);



#if ITN_KSG_HAVE_AVX512

/**
 * One sample's search beyond the cells `[x0, x1] x [y0, y1]` (which were searched: `b` holds the three smallest
 * distances found there) when its third distance is not within their border: the rectangle of strips that can hold
 * nearer samples, its ranges outside those cells inserted. Its radius into `qr`.
 */
ITN_KSG_AVX512 static void widen(itn_ksg_ctx *c, const itn_grid *g, int32_t s, double *b, int32_t x0, int32_t x1,
                                 int32_t y0, int32_t y1, double *qr) {
  const double x = g->px[s], y = g->py[s];
  const float *xs = g->xs, *ys = g->ys;
  const int32_t *xe = g->xe, *ye = g->ye, *start = g->start, Gx = g->Gx, Gy = g->Gy;
  double kth = b[2];
  int32_t X0 = x0, X1 = x1, Y0 = y0, Y1 = y1;
  const double bx = fmin(x0 > 0 ? x - xs[xe[x0] - 1] : INFINITY, x1 < Gx - 1 ? xs[xe[x1 + 1]] - x : INFINITY);
  const double by = fmin(y0 > 0 ? y - ys[ye[y0] - 1] : INFINITY, y1 < Gy - 1 ? ys[ye[y1 + 1]] - y : INFINITY);
  if (!(kth <= fmin(bx, by))) {
    while (X0 > 0 && x - xs[xe[X0] - 1] < kth) X0--;
    while (X1 < Gx - 1 && xs[xe[X1 + 1]] - x < kth) X1++;
    while (Y0 > 0 && y - ys[ye[Y0] - 1] < kth) Y0--;
    while (Y1 < Gy - 1 && ys[ye[Y1 + 1]] - y < kth) Y1++;
    int32_t *r0 = c->r0, *r1 = c->r1, count = 0;
    for (int32_t gy = Y0; gy <= Y1; gy++) {
      const int32_t row = gy * Gx;
      if (gy < y0 || gy > y1) r0[count] = start[row + X0], r1[count++] = start[row + X1 + 1];
      else {
        if (X0 < x0) r0[count] = start[row + X0], r1[count++] = start[row + x0];
        if (X1 > x1) r0[count] = start[row + x1 + 1], r1[count++] = start[row + X1 + 1];
      }
    }
    if (!any_heavy(g, X0, X1, Y0, Y1)) insert_ranges(g->px, g->py, r0, r1, count, x, y, b);
    else
      for (int32_t k = 0; k < count; k++) scan(g->px, g->py, g->pw, r0[k], r1[k], -1, x, y, b);
    kth = b[2];
  }
  qr[s] = kth > 0 ? kth : DBL_TRUE_MIN;
}

/**
 * The radii of the lanes `lanes` of the stored samples from `s0`: the third distance `d3` (the least positive double
 * where it is 0).
 */
ITN_KSG_AVX512 static inline void put_radii(double *qr, int32_t s0, __mmask8 lanes, __m512d d3) {
  const __mmask8 pos = _mm512_cmp_pd_mask(d3, _mm512_setzero_pd(), _CMP_GT_OQ);
  _mm512_mask_storeu_pd(qr + s0, lanes, _mm512_mask_blend_pd(pos, _mm512_set1_pd(DBL_TRUE_MIN), d3));
}

/**
 * Pass 1: every stored sample's radius (its third distance; 0 for a heavy point's representative, whose terms are
 * added apart) into `qr` by stored position. The samples of a strip row are taken eight at a time, one a lane: their
 * candidates are the cells of the strips one either side of theirs (the union of their blocks), each broadcast to all
 * lanes (a lane's own sample masked), the three smallest kept lane by lane, after the heavy points (up to
 * ITN_FEW_HEAVY, taken first: each lowers all three). While some lane's third distance reaches beyond a side of the
 * searched rectangle of strips, that side grows by a strip and its new cells are scanned for all lanes. With more heavy
 * points, lanes beside one scan one by one with the weights ({@link widen}).
 */
ITN_KSG_AVX512 static void search(itn_ksg_ctx *c, const itn_grid *g, const int32_t *pcx) {
  const int32_t *start = g->start, *xe = g->xe, *ye = g->ye, Gx = g->Gx, Gy = g->Gy;
  const float *xs = g->xs, *ys = g->ys;
  const double *px = g->px, *py = g->py;
  double *qr = c->qr;
  const __m512d inf = _mm512_set1_pd(INFINITY);
  for (int32_t cy = 0; cy < Gy; cy++) {
    const int32_t w0 = start[cy * Gx], w1 = start[cy * Gx + Gx];
    for (int32_t s0 = w0; s0 < w1; s0 += 8) {
      const int32_t cnt = w1 - s0 < 8 ? w1 - s0 : 8;
      const __mmask8 lanes = (__mmask8)_bzhi_u32(0xff, (uint32_t)cnt);
      const int32_t cA = pcx[s0], cB = pcx[s0 + cnt - 1];
      int32_t x0 = cA > 0 ? cA - 1 : 0, x1 = cB + 1 < Gx ? cB + 1 : Gx - 1;
      int32_t y0 = cy > 0 ? cy - 1 : 0, y1 = cy + 1 < Gy ? cy + 1 : Gy - 1;
      const double yLoV = y0 > 0 ? ys[ye[y0] - 1] : -INFINITY, yHiV = y1 < Gy - 1 ? ys[ye[y1 + 1]] : INFINITY;
      if (g->H < 0 && any_heavy(g, x0, x1, y0, y1)) {
        for (int32_t s = s0; s < s0 + cnt; s++) {
          if (g->pw[s] > 1) {
            qr[s] = 0;
            continue;
          }
          double b[3] = {INFINITY, INFINITY, INFINITY};
          for (int32_t gy = y0; gy <= y1; gy++)
            scan(px, py, g->pw, start[gy * Gx + x0], start[gy * Gx + x1 + 1], s, px[s], py[s], b);
          widen(c, g, s, b, x0, x1, y0, y1, qr);
        }
        continue;
      }
      const double xLoV = x0 > 0 ? xs[xe[x0] - 1] : -INFINITY, xHiV = x1 < Gx - 1 ? xs[xe[x1 + 1]] : INFINITY;
      const __m512d X = _mm512_maskz_loadu_pd(lanes, px + s0), Y = _mm512_maskz_loadu_pd(lanes, py + s0);
      __m512d m1 = inf, m2 = inf, m3 = inf;
      for (int32_t h = 0; h < g->H; h++) {
        // a heavy point counts at least four times: it lowers all three distances (met again in the scan, its
        // representative changes nothing)
        const __m512d d = _mm512_range_pd(_mm512_sub_pd(X, _mm512_set1_pd(g->hx[h])),
                                          _mm512_sub_pd(Y, _mm512_set1_pd(g->hy[h])), 0x0B);
        m1 = _mm512_min_pd(m1, d), m2 = _mm512_min_pd(m2, d), m3 = _mm512_min_pd(m3, d);
      }
      // one candidate against all lanes: max(|dx|, |dy|) with the sign cleared (VRANGEPD, imm 0b1011), +inf in
      // the lanes of `keep_` clear (the sample itself)
#define ITN_CAND(q_, keep_)                                                                                     \
  do {                                                                                                          \
    const __m512d dx_ = _mm512_sub_pd(X, _mm512_set1_pd(px[q_])), dy_ = _mm512_sub_pd(Y, _mm512_set1_pd(py[q_])); \
    insert_lanes(&m1, &m2, &m3, _mm512_mask_range_pd(inf, (keep_), dx_, dy_, 0x0B));                          \
  } while (0)
      for (int32_t gy = y0; gy <= y1; gy++) {
        const int32_t q0 = start[gy * Gx + x0], q1 = start[gy * Gx + x1 + 1];
        PROFC(4, q1 - q0);
        if (gy != cy) {
          for (int32_t q = q0; q < q1; q++) ITN_CAND(q, 0xff);
        } else {
          for (int32_t q = q0; q < s0; q++) ITN_CAND(q, 0xff);
          for (int32_t k = 0; k < cnt; k++) ITN_CAND(s0 + k, (__mmask8)~(1u << k));
          for (int32_t q = s0 + cnt; q < q1; q++) ITN_CAND(q, 0xff);
        }
      }
      const __m512d bx = _mm512_min_pd(_mm512_sub_pd(X, _mm512_set1_pd(xLoV)), _mm512_sub_pd(_mm512_set1_pd(xHiV), X));
      const __m512d by = _mm512_min_pd(_mm512_sub_pd(Y, _mm512_set1_pd(yLoV)), _mm512_sub_pd(_mm512_set1_pd(yHiV), Y));
      const __mmask8 sure = _mm512_cmp_pd_mask(m3, _mm512_min_pd(bx, by), _CMP_LE_OQ);
      int32_t X0 = x0, X1 = x1, Y0 = y0, Y1 = y1;
      const __mmask8 more = lanes & ~sure;
      if (more && g->H >= 0) {
        // grow the searched rectangle a strip at a time on each side that some unsure lane's third distance reaches
        // beyond, until every lane's third distance is within its border
        __mmask8 left = more;
        for (;;) {
          const double xl = X0 > 0 ? xs[xe[X0] - 1] : -INFINITY, xh = X1 < Gx - 1 ? xs[xe[X1 + 1]] : INFINITY;
          const double yl = Y0 > 0 ? ys[ye[Y0] - 1] : -INFINITY, yh = Y1 < Gy - 1 ? ys[ye[Y1 + 1]] : INFINITY;
          const __m512d dl = _mm512_sub_pd(X, _mm512_set1_pd(xl)), dr = _mm512_sub_pd(_mm512_set1_pd(xh), X);
          const __m512d dd = _mm512_sub_pd(Y, _mm512_set1_pd(yl)), du = _mm512_sub_pd(_mm512_set1_pd(yh), Y);
          const __mmask8 gl = _mm512_mask_cmp_pd_mask(left, m3, dl, _CMP_GT_OQ);
          const __mmask8 gr = _mm512_mask_cmp_pd_mask(left, m3, dr, _CMP_GT_OQ);
          const __mmask8 gd = _mm512_mask_cmp_pd_mask(left, m3, dd, _CMP_GT_OQ);
          const __mmask8 gu = _mm512_mask_cmp_pd_mask(left, m3, du, _CMP_GT_OQ);
          left = gl | gr | gd | gu;
          if (!left) break;
          PROFC(5, 1);
          if (gl) {
            X0--;
            for (int32_t gy = Y0; gy <= Y1; gy++)
              for (int32_t q = start[gy * Gx + X0], q1 = start[gy * Gx + X0 + 1]; q < q1; q++) ITN_CAND(q, 0xff);
          }
          if (gr) {
            X1++;
            for (int32_t gy = Y0; gy <= Y1; gy++)
              for (int32_t q = start[gy * Gx + X1], q1 = start[gy * Gx + X1 + 1]; q < q1; q++) ITN_CAND(q, 0xff);
          }
          if (gd) {
            Y0--;
            for (int32_t q = start[Y0 * Gx + X0], q1 = start[Y0 * Gx + X1 + 1]; q < q1; q++) ITN_CAND(q, 0xff);
          }
          if (gu) {
            Y1++;
            for (int32_t q = start[Y1 * Gx + X0], q1 = start[Y1 * Gx + X1 + 1]; q < q1; q++) ITN_CAND(q, 0xff);
          }
        }
      } else if (more) {
        // the rectangle of strips that can hold samples nearer than those lanes' third distances, for all lanes
        const double K = _mm512_mask_reduce_max_pd(more, m3);
        const double xmin = _mm512_mask_reduce_min_pd(more, X), xmax = _mm512_mask_reduce_max_pd(more, X);
        const double ymin = _mm512_mask_reduce_min_pd(more, Y), ymax = _mm512_mask_reduce_max_pd(more, Y);
        // strips across from those lanes' own (the first and last of them: samples lie in strip order)
        int32_t XL = pcx[s0 + __builtin_ctz(more)], XR = pcx[s0 + 31 - __builtin_clz(more)];
        while (XL > 0 && xmin - xs[xe[XL] - 1] < K) XL--;
        while (XR < Gx - 1 && xs[xe[XR + 1]] - xmax < K) XR++;
        while (Y0 > 0 && ymin - ys[ye[Y0] - 1] < K) Y0--;
        while (Y1 < Gy - 1 && ys[ye[Y1 + 1]] - ymax < K) Y1++;
        X0 = XL < x0 ? XL : x0, X1 = XR > x1 ? XR : x1;
        PROFC(5, 1);
        if (any_heavy(g, X0, X1, Y0, Y1)) {
          // beside a heavy point: those lanes one by one, with the weights
          double d1[8], d2[8], d3[8];
          _mm512_storeu_pd(d1, m1), _mm512_storeu_pd(d2, m2), _mm512_storeu_pd(d3, m3);
          put_radii(qr, s0, lanes, m3);
          for (__mmask8 left = more; left; left &= left - 1) {
            const int k = __builtin_ctz(left);
            double b[3] = {d1[k], d2[k], d3[k]};
            widen(c, g, s0 + k, b, x0, x1, y0, y1, qr);
          }
          continue;
        }
        for (int32_t gy = Y0; gy <= Y1; gy++) {
          const int32_t row = gy * Gx;
          int32_t a0 = start[row + XL], a1 = start[row + XR + 1], c0 = a1, c1 = a1;
          if (gy >= y0 && gy <= y1) {
            // the union's cells are done: what lies left and right of them
            a0 = start[row + X0], a1 = start[row + x0], c0 = start[row + x1 + 1], c1 = start[row + X1 + 1];
          }
          for (int32_t q = a0; q < a1; q++) ITN_CAND(q, 0xff);
          for (int32_t q = c0; q < c1; q++) ITN_CAND(q, 0xff);
        }
      }
      put_radii(qr, s0, lanes, m3);
      if (g->H > 0) {
        // heavy points' representatives: radius 0 (their terms are the caller's)
        const __mmask8 reps = _mm256_mask_cmpgt_epi32_mask(lanes, _mm256_maskz_loadu_epi32(lanes, g->pw + s0), _mm256_set1_epi32(1));
        _mm512_mask_storeu_pd(qr + s0, reps, _mm512_setzero_pd());
      }
    }
  }
#undef ITN_CAND
}


/**
 * Eight lanes' fence positions of `v`: the first sorted position of `v`'s fence bucket (plugins/mi/ksg.ts
 * `fenceBucket`; with `bits`, over the float32 bits of `v`).
 */
ITN_KSG_AVX512 static inline __m256i fence8(const int32_t *fence, __m512d v, __m512d lo, __m512d sc, __m512d top,
                                              int bits) {
  if (bits) {
    const __m256i u = _mm256_castps_si256(_mm512_cvtpd_ps(_mm512_add_pd(v, _mm512_setzero_pd())));
    const __m256i k = _mm256_xor_si256(u, _mm256_or_si256(_mm256_srai_epi32(u, 31), _mm256_set1_epi32((int)0x80000000u)));
    v = _mm512_cvtepu32_pd(k);
  }
  const __m512d q = _mm512_min_pd(_mm512_max_pd(_mm512_mul_pd(_mm512_sub_pd(v, lo), sc), _mm512_setzero_pd()), top);
  return _mm256_i32gather_epi32(fence, _mm512_cvttpd_epi32(q), 4);
}

/**
 * Pass 2: the sum of the fixed-point terms `psi[n_x + 1] + psi[n_y + 1]` of the stored samples with a radius
 * (`qr > 0`). Per sample, each of its four count borders (the first sorted position where a predicate holds, as
 * below) from the predicate at the eight positions from `a - 1`, one vector (`a`: the fence's first position of
 * `c - r` or `c + r`, computed eight samples at a time, at most the sample's own position on the left, after it on
 * the right, and kept in `[1, n - 7]`); where the border is not among them, by galloping from there. Needs `n >= 8`.
 */
ITN_KSG_AVX512 __attribute__((noinline)) static int64_t counts(int32_t N, int32_t n, int32_t M, const double *qr,
                                                               const double *px, const double *py,
                                                               const float *xs, const int32_t *xf, double xlo,
                                                               double xsc, const float *ys, const int32_t *yf,
                                                               double ylo, double ysc, const int64_t *psi) {
  int64_t tot = 0;
  if (n < 8) return counts_g(N, n, M, qr, px, py, xs, xf, xlo, xsc, ys, yf, ylo, ysc, psi);
  // a negative scale: buckets of the values' order-preserving bits
  const int xbits = xsc < 0, ybits = ysc < 0;
  const __m512d top = _mm512_set1_pd((double)(M - 1)), vxlo = _mm512_set1_pd(xlo), vxsc = _mm512_set1_pd(fabs(xsc));
  const __m512d vylo = _mm512_set1_pd(ylo), vysc = _mm512_set1_pd(fabs(ysc));
  const __m256i one = _mm256_set1_epi32(1), last = _mm256_set1_epi32(n - 7);
  __m512i acc = _mm512_setzero_si512();
  for (int32_t j0 = 0; j0 < N; j0 += 8) {
    const __mmask8 in = (__mmask8)_bzhi_u32(0xff, (uint32_t)(N - j0 > 8 ? 8 : N - j0));
    const __m512d r = _mm512_maskz_loadu_pd(in, qr + j0);
    const __mmask8 live = _mm512_mask_cmp_pd_mask(in, r, _mm512_setzero_pd(), _CMP_GT_OQ);
    if (!live) continue;
    const __m512d x = _mm512_maskz_loadu_pd(in, px + j0), y = _mm512_maskz_loadu_pd(in, py + j0);
#define ITN_CLAMP(v) _mm256_min_epi32(_mm256_max_epi32((v), one), last)
    __m256i A[4];
    A[0] = ITN_CLAMP(fence8(xf, _mm512_sub_pd(x, r), vxlo, vxsc, top, xbits));
    A[1] = ITN_CLAMP(fence8(xf, _mm512_add_pd(x, r), vxlo, vxsc, top, xbits));
    A[2] = ITN_CLAMP(fence8(yf, _mm512_sub_pd(y, r), vylo, vysc, top, ybits));
    A[3] = ITN_CLAMP(fence8(yf, _mm512_add_pd(y, r), vylo, vysc, top, ybits));
#undef ITN_CLAMP
    int32_t a[4][8];
    double cx[8], cy[8], rv[8];
    for (int b = 0; b < 4; b++) _mm256_storeu_si256((__m256i *)a[b], A[b]);
    _mm512_storeu_pd(cx, x), _mm512_storeu_pd(cy, y), _mm512_storeu_pd(rv, r);
    // each lane's four windows: the predicate at the eight positions from a - 1, as a byte (all lanes: those
    // without a job read valid positions too, their bytes unused)
    uint8_t h[4][8];
    for (int k = 0; k < 8; k++) {
      const __m512d vr = _mm512_set1_pd(rv[k]), vx = _mm512_set1_pd(cx[k]), vy = _mm512_set1_pd(cy[k]);
      h[0][k] = _mm512_cmp_pd_mask(_mm512_sub_pd(vx, _mm512_cvtps_pd(_mm256_loadu_ps(xs + a[0][k] - 1))), vr, _CMP_LT_OQ);
      h[1][k] = _mm512_cmp_pd_mask(_mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(xs + a[1][k] - 1)), vx), vr, _CMP_GE_OQ);
      h[2][k] = _mm512_cmp_pd_mask(_mm512_sub_pd(vy, _mm512_cvtps_pd(_mm256_loadu_ps(ys + a[2][k] - 1))), vr, _CMP_LT_OQ);
      h[3][k] = _mm512_cmp_pd_mask(_mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(ys + a[3][k] - 1)), vy), vr, _CMP_GE_OQ);
    }
    // a border is found where its byte is false at a - 1 and true somewhere: a - 1 plus its trailing zeros
    __m256i pos[4];
    __mmask8 bad = 0;
    for (int b = 0; b < 4; b++) {
      const __m256i hv = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)h[b]));
      bad |= _mm256_cmple_epu32_mask(hv, one) | _mm256_test_epi32_mask(hv, one);
      // trailing zeros: 31 less the leading zeros of the lowest set bit (AVX-512 CD)
      const __m256i low = _mm256_and_si256(hv, _mm256_sub_epi32(_mm256_setzero_si256(), hv));
      const __m256i tz = _mm256_sub_epi32(_mm256_set1_epi32(31), _mm256_lzcnt_epi32(low));
      pos[b] = _mm256_add_epi32(_mm256_sub_epi32(A[b], one), tz);
    }
    bad &= live;
    if (__builtin_expect(bad != 0, 0)) {
      int32_t B[4][8];
      for (int b = 0; b < 4; b++) _mm256_storeu_si256((__m256i *)B[b], pos[b]);
      for (__mmask8 left = bad; left; left &= left - 1) {
        const int k = __builtin_ctz(left);
        const double rr = rv[k];
        for (int d = 0; d < 2; d++) {
          const float *vs = d ? ys : xs;
          const double c = d ? cy[k] : cx[k];
          const int32_t u = a[2 * d][k], w = a[2 * d + 1][k];
          const uint32_t hl = h[2 * d][k], hr = h[2 * d + 1][k];
          if (hl > 1 && !(hl & 1)) {
          } else if (hl & 1) ITN_DOWN(B[2 * d][k], 0, n - 1, u - 1, PL);
          else ITN_UP(B[2 * d][k], 0, n - 1, u + 6, PL);
          if (hr > 1 && !(hr & 1)) {
          } else if (hr & 1) ITN_DOWN(B[2 * d + 1][k], 0, n, w - 1, PR);
          else ITN_UP(B[2 * d + 1][k], 0, n, w + 6, PR);
        }
      }
      for (int b = 0; b < 4; b++) pos[b] = _mm256_loadu_si256((const __m256i *)B[b]);
    }
    const __m512i none = _mm512_setzero_si512();
    acc = _mm512_add_epi64(acc, _mm512_mask_i32gather_epi64(none, live, _mm256_sub_epi32(pos[1], pos[0]), psi, 8));
    acc = _mm512_add_epi64(acc, _mm512_mask_i32gather_epi64(none, live, _mm256_sub_epi32(pos[3], pos[2]), psi, 8));
  }
  tot = _mm512_reduce_add_epi64(acc);
  return tot;
}


#endif


/** Four floats, doubles and 64-bit integers as GCC vector types (any target: the generic kernel's windows). */
typedef float itn_v4f __attribute__((vector_size(16)));
typedef double itn_v4d __attribute__((vector_size(32)));
typedef int64_t itn_v4l __attribute__((vector_size(32)));

/** `a < b ? a : b` and `a > b ? a : b` (the AVX-512 kernel's `vminpd`, `vmaxpd`). */
#define ITN_MIN(a, b) ((a) < (b) ? (a) : (b))
#define ITN_MAX(a, b) ((a) > (b) ? (a) : (b))

/**
 * The generic kernel's pass 1 (pass 1 of the AVX-512 kernel, `search`, in plain C over arrays of eight lanes, which
 * the compiler vectorises: AVX2 on x86-64 without AVX-512, NEON on ARM): the same three smallest distances of every
 * stored sample, the same radii. Needs at most ITN_FEW_HEAVY heavy points (`g->H >= 0`).
 */
ITN_GENERIC __attribute__((noinline)) static void search_g(itn_ksg_ctx *c, const itn_grid *g, const int32_t *pcx) {
  const int32_t *start = g->start, *xe = g->xe, *ye = g->ye, Gx = g->Gx, Gy = g->Gy;
  const float *xs = g->xs, *ys = g->ys;
  const double *px = g->px, *py = g->py;
  double *qr = c->qr;
  for (int32_t cy = 0; cy < Gy; cy++) {
    const int32_t w0 = start[cy * Gx], w1 = start[cy * Gx + Gx];
    for (int32_t s0 = w0; s0 < w1; s0 += 8) {
      const int32_t cnt = w1 - s0 < 8 ? w1 - s0 : 8;
      const int32_t cA = pcx[s0], cB = pcx[s0 + cnt - 1];
      const int32_t x0 = cA > 0 ? cA - 1 : 0, x1 = cB + 1 < Gx ? cB + 1 : Gx - 1;
      const int32_t y0 = cy > 0 ? cy - 1 : 0, y1 = cy + 1 < Gy ? cy + 1 : Gy - 1;
      double X[8], Y[8], m1[8], m2[8], m3[8];
      for (int l = 0; l < 8; l++) {
        X[l] = l < cnt ? px[s0 + l] : 0, Y[l] = l < cnt ? py[s0 + l] : 0;
        m1[l] = m2[l] = m3[l] = INFINITY;
      }
      for (int32_t h = 0; h < g->H; h++) {
        const double hx = g->hx[h], hy = g->hy[h];
        for (int l = 0; l < 8; l++) {
          const double ax = fabs(X[l] - hx), ay = fabs(Y[l] - hy), d = ITN_MAX(ax, ay);
          m1[l] = ITN_MIN(m1[l], d), m2[l] = ITN_MIN(m2[l], d), m3[l] = ITN_MIN(m3[l], d);
        }
      }
      // one candidate against all lanes (lane `self_` skipped: the sample itself), three smallest kept lane by lane
#define ITN_CAND_G(q_, self_)                                                                                       \
  do {                                                                                                              \
    const double qx_ = px[q_], qy_ = py[q_];                                                                        \
    for (int l = 0; l < 8; l++) {                                                                                   \
      const double ax_ = fabs(X[l] - qx_), ay_ = fabs(Y[l] - qy_);                                                  \
      const double d_ = l == (self_) ? INFINITY : ITN_MAX(ax_, ay_);                                                \
      const double t_ = ITN_MAX(m1[l], d_), u_ = ITN_MAX(m2[l], t_);                                                \
      m1[l] = ITN_MIN(m1[l], d_), m2[l] = ITN_MIN(m2[l], t_), m3[l] = ITN_MIN(m3[l], u_);                           \
    }                                                                                                               \
  } while (0)
      for (int32_t gy = y0; gy <= y1; gy++) {
        const int32_t q0 = start[gy * Gx + x0], q1 = start[gy * Gx + x1 + 1];
        if (gy != cy) {
          for (int32_t q = q0; q < q1; q++) ITN_CAND_G(q, -1);
        } else {
          for (int32_t q = q0; q < s0; q++) ITN_CAND_G(q, -1);
          for (int32_t k = 0; k < cnt; k++) ITN_CAND_G(s0 + k, k);
          for (int32_t q = s0 + cnt; q < q1; q++) ITN_CAND_G(q, -1);
        }
      }
      // grow the searched rectangle a strip at a time on each side that some lane's third distance reaches beyond
      int32_t X0 = x0, X1 = x1, Y0 = y0, Y1 = y1;
      for (;;) {
        const double xl = X0 > 0 ? xs[xe[X0] - 1] : -INFINITY, xh = X1 < Gx - 1 ? xs[xe[X1 + 1]] : INFINITY;
        const double yl = Y0 > 0 ? ys[ye[Y0] - 1] : -INFINITY, yh = Y1 < Gy - 1 ? ys[ye[Y1 + 1]] : INFINITY;
        int gl = 0, gr = 0, gd = 0, gu = 0;
        for (int l = 0; l < cnt; l++) {
          gl |= m3[l] > X[l] - xl, gr |= m3[l] > xh - X[l], gd |= m3[l] > Y[l] - yl, gu |= m3[l] > yh - Y[l];
        }
        if (!(gl | gr | gd | gu)) break;
        if (gl) {
          X0--;
          for (int32_t gy = Y0; gy <= Y1; gy++)
            for (int32_t q = start[gy * Gx + X0], q1 = start[gy * Gx + X0 + 1]; q < q1; q++) ITN_CAND_G(q, -1);
        }
        if (gr) {
          X1++;
          for (int32_t gy = Y0; gy <= Y1; gy++)
            for (int32_t q = start[gy * Gx + X1], q1 = start[gy * Gx + X1 + 1]; q < q1; q++) ITN_CAND_G(q, -1);
        }
        if (gd) {
          Y0--;
          for (int32_t q = start[Y0 * Gx + X0], q1 = start[Y0 * Gx + X1 + 1]; q < q1; q++) ITN_CAND_G(q, -1);
        }
        if (gu) {
          Y1++;
          for (int32_t q = start[Y1 * Gx + X0], q1 = start[Y1 * Gx + X1 + 1]; q < q1; q++) ITN_CAND_G(q, -1);
        }
      }
#undef ITN_CAND_G
      // radii: the third distance (the least positive double where it is 0); 0 for heavy points' representatives
      for (int l = 0; l < cnt; l++)
        qr[s0 + l] = g->pw && g->pw[s0 + l] > 1 ? 0 : m3[l] > 0 ? m3[l] : DBL_TRUE_MIN;
    }
  }
}

/** The fence position of `v` (plugins/mi/ksg.ts `fenceBucket`; `bits`: over the float32 bits of `v`). */
ITN_GENERIC static inline int32_t fence_at(const int32_t *fence, double v, double lo, double sc, int bits, int32_t M) {
  if (bits) {
    const float f = (float)(v + 0.0);
    uint32_t u;
    memcpy(&u, &f, 4);
    v = (double)(u ^ ((uint32_t)((int32_t)u >> 31) | 0x80000000u));
  }
  double q = (v - lo) * sc;
  q = q < M - 1 ? q : M - 1;
  q = q > 0 ? q : 0;
  return fence[(int32_t)q];
}

/**
 * The generic kernel's pass 2 (as `counts`, one sample at a time): each border from the predicate at the eight
 * positions from its fence position (kept in `[1, n - 7]`), else by galloping from there.
 */
ITN_GENERIC __attribute__((noinline)) static int64_t counts_g(int32_t N, int32_t n, int32_t M, const double *qr,
                                                              const double *px, const double *py, const float *xs,
                                                              const int32_t *xf, double xlo, double xsc,
                                                              const float *ys, const int32_t *yf, double ylo,
                                                              double ysc, const int64_t *psi) {
  int64_t tot = 0;
  for (int32_t j = 0; j < N; j++) {
    const double rr = qr[j];
    if (!(rr > 0)) continue;
    int32_t B[4];
    for (int d = 0; d < 2; d++) {
      const float *vs = d ? ys : xs;
      const int32_t *fence = d ? yf : xf;
      const double c = d ? py[j] : px[j], lo = d ? ylo : xlo, sc = d ? ysc : xsc;
      if (n < 8) {
        // too few for a window: each border by halvings of its whole range
        ITN_FIRST(B[2 * d], 0, n - 1, PL);
        ITN_FIRST(B[2 * d + 1], 0, n, PR);
        continue;
      }
      int32_t a = fence_at(fence, c - rr, lo, fabs(sc), sc < 0, M), b = fence_at(fence, c + rr, lo, fabs(sc), sc < 0, M);
      a = a < 1 ? 1 : a > n - 7 ? n - 7 : a;
      b = b < 1 ? 1 : b > n - 7 ? n - 7 : b;
      // the predicate at the eight positions of each window, as vectors (GCC's vector types: AVX2 here, NEON on
      // ARM); false then true, so the border is the window's start plus its falses, where the first is false and
      // one is true
      itn_v4f l0, l1, r0, r1;
      memcpy(&l0, vs + a - 1, 16), memcpy(&l1, vs + a + 3, 16), memcpy(&r0, vs + b - 1, 16), memcpy(&r1, vs + b + 3, 16);
      const itn_v4l tl = ((c - __builtin_convertvector(l0, itn_v4d)) < rr) + ((c - __builtin_convertvector(l1, itn_v4d)) < rr);
      const itn_v4l tr = ((__builtin_convertvector(r0, itn_v4d) - c) >= rr) + ((__builtin_convertvector(r1, itn_v4d) - c) >= rr);
      const int first_l = c - (double)vs[a - 1] < rr, first_r = (double)vs[b - 1] - c >= rr;
      const int64_t nl = -(tl[0] + tl[1] + tl[2] + tl[3]), nr = -(tr[0] + tr[1] + tr[2] + tr[3]);
      if (!first_l && nl > 0) B[2 * d] = a + 7 - (int32_t)nl;
      else if (first_l) ITN_DOWN(B[2 * d], 0, n - 1, a - 1, PL);
      else ITN_UP(B[2 * d], 0, n - 1, a + 6, PL);
      if (!first_r && nr > 0) B[2 * d + 1] = b + 7 - (int32_t)nr;
      else if (first_r) ITN_DOWN(B[2 * d + 1], 0, n, b - 1, PR);
      else ITN_UP(B[2 * d + 1], 0, n, b + 6, PR);
    }
    tot += psi[B[1] - B[0]] + psi[B[3] - B[2]];
  }
  return tot;
}

/**
 * The pair on the AVX-512 kernel (`wide`) or the generic one (which declines, -1, with more than ITN_FEW_HEAVY heavy
 * points: the caller's WebAssembly kernel takes those).
 */
static int32_t ksg_pair_run(int wide, void *p, int32_t n, const float *xv, const uint16_t *xc,
                                              const int32_t *xo, const float *xs, const int32_t *xe, int32_t Gx,
                                              const int32_t *xf, double xlo, double xsc, const int32_t *xg,
                                              const int32_t *xt, const float *yv, const uint16_t *yc,
                                              const float *ys, const int32_t *ye, int32_t Gy, const int32_t *yf,
                                              double ylo, double ysc, const int32_t *yg, const int32_t *yt,
                                              const int64_t *psi, int64_t *out) {
  (void)wide; // without AVX-512 code in this build: the generic kernel only
  itn_ksg_ctx *c = (itn_ksg_ctx *)p;
  const int32_t cells = Gx * Gy, M = n * ITN_FENCE_BUCKETS;
  if (n < 2 || grow(c, n, cells) != 0) return -1;
  PROFC(3, 1);
  PROFN(0);
  int64_t terms = 0;
  const int32_t *dup = xg && xt && yg && yt ? heavy_points(c, n, xg, xt, yg, yt, psi, &terms) : NULL;
  int32_t *start = c->start, *pw = dup ? c->pw : NULL, *pcx = c->pcx;
  double *px = c->px, *py = c->py, *qr = c->qr;
  uint8_t *heavy = c->heavy;
  place(c, n, cells, Gx, xv, xc, xo, xs, xe, yv, yc, ys, yf, dup, xf);
  const int32_t N = start[cells];
  PROF(0);
  PROFN(1);
  // few heavy points: into every group's lists first (the vector search as without them); many: one by one
  const int32_t H = !dup ? 0 : c->H <= ITN_FEW_HEAVY ? c->H : -1;
  const itn_grid g = {start, xe, ye, pw, heavy, xs, ys, px, py, Gx, Gy, N, n, c->hx, c->hy, H};
#if ITN_KSG_HAVE_AVX512
  if (wide) search(c, &g, pcx);
  else
#endif
  {
    if (H < 0) return -1;
    search_g(c, &g, pcx);
  }
  PROF(1);
  PROFN(2);
  // pass 2: the counts, eight stored samples a step (radius 0: none), each border from an eight-position window
  // after its fence position; lanes that miss gallop from there, one by one
#if ITN_KSG_HAVE_AVX512
  if (wide) out[0] = counts(N, n, M, qr, px, py, xs, xf, xlo, xsc, ys, yf, ylo, ysc, psi) + terms;
  else
#endif
    out[0] = counts_g(N, n, M, qr, px, py, xs, xf, xlo, xsc, ys, yf, ylo, ysc, psi) + terms;
  PROF(2);
  return 0;
}

/**
 * 1 where the CPU has what the KSG pair kernel needs (AVX-512 F, BW, VL, DQ, CD; BMI2: also Skylake-SP and Cascade
 * Lake, which lack the VPOPCNTDQ of the binned-MI counts), else 0.
 */
int32_t itn_ksg_supported(void) {
#if ITN_KSG_HAVE_AVX512
  static int known = -1; // the same answer whichever thread asks first
  if (known < 0) {
    __builtin_cpu_init();
    known = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
            __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("bmi2");
  }
  return known;
#else
  return 0;
#endif
}

/**
 * The KSG pair kernel this process runs: 2, the AVX-512 one (`itn_ksg_supported`); 1, the generic one (AVX2 on
 * x86-64, any CPU elsewhere); 0, none (the caller's WebAssembly kernel). `want >= 0` caps it from then on, for every
 * thread (tests run the generic kernel on AVX-512 machines; -1 only asks).
 */
int32_t itn_ksg_kernel(int32_t want) {
  static int cap = 2, best = -1;
  if (best < 0) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    best = itn_ksg_supported() ? 2 : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2") ? 1 : 0;
#else
    best = 1;
#endif
  }
  if (want >= 0) cap = want;
  return best < cap ? best : cap;
}

/**
 * The exact sum over all samples of `psi[n_x + 1] + psi[n_y + 1]` (`psi`: fixed-point terms, plugins/mi/ksg.ts
 * `fixedPsi`) into `out[0]`. Per neuron: values `xv` and strip `xc` of each sample, the sample at each sorted position
 * `xo`, sorted values `xs`, strip edges `xe` (`Gx + 1`), fence table `xf` (`ITN_FENCE_BUCKETS * n + 1`) with its
 * origin and scale (negative: over the values' bits), and, where both neurons have a tie group of more than 3 samples,
 * each sample's tie group start `xg` and size `xt` (else NULL: no heavy point possible; `yo` is not read). Returns 0,
 * or -1 where the scratch memory could not be had, `n < 2`, no kernel runs here, or the generic kernel declines
 * (more than ITN_FEW_HEAVY heavy points): nothing done, the caller counts another way.
 *
 * Heavy points (more than 3 samples at one point) are stored once with their multiplicity, their terms from their tie
 * groups; then two passes: the search stores each stored sample's radius (a strip row's samples eight at a time, one a
 * lane, against the union of their blocks, grown a strip at a time where needed), then the counts, eight samples a
 * step, each border from an eight-position window after its fence position (else by galloping).
 */
int32_t itn_ksg_pair(void *p, int32_t n, const float *xv, const uint16_t *xc, const int32_t *xo, const float *xs,
                     const int32_t *xe, int32_t Gx, const int32_t *xf, double xlo, double xsc, const int32_t *xg,
                     const int32_t *xt, const float *yv, const uint16_t *yc, const int32_t *yo, const float *ys,
                     const int32_t *ye, int32_t Gy, const int32_t *yf, double ylo, double ysc, const int32_t *yg,
                     const int32_t *yt, const int64_t *psi, int64_t *out) {
  (void)yo; // the samples are placed in x's sorted order only
  const int32_t level = itn_ksg_kernel(-1);
  if (level > 0)
    return ksg_pair_run(level == 2, p, n, xv, xc, xo, xs, xe, Gx, xf, xlo, xsc, xg, xt, yv, yc, ys, ye, Gy, yf, ylo, ysc,
                        yg, yt, psi, out);
  (void)p, (void)n, (void)xv, (void)xc, (void)xo, (void)xs, (void)xe, (void)Gx, (void)xf, (void)xlo, (void)xg;
  (void)xt, (void)xsc, (void)yv, (void)yc, (void)ys, (void)ye, (void)Gy, (void)yf, (void)ylo, (void)ysc, (void)yg;
  (void)yt;
  (void)psi;
  (void)out;
  return -1;
}

/**
 * KSG estimates (k = 3) of `count` pairs (`pairs`: `[a0, b0, a1, b1, ...]`) of neurons prepared into one set of
 * neuron-major arrays (plugins/mi/ksg_pairs.ts `PairJob`: `n` entries a neuron, `G1` strip edges and `F` fence
 * entries a neuron; per neuron its strips, fence origin and scale, largest tie group and whether it is finite): for
 * each pair `mi[p] = psi[n] + psi[3] - S / 2^36 / n` from the exact fixed-point sum `S` (plugins/mi/ksg.ts
 * `ksgFromSum`, the same bits) and `done[p] = 1`; `done[p] = 0` where the caller computes it (a neuron not all
 * finite, or `itn_ksg_pair` declined). One call for many pairs: no JavaScript a pair.
 */
int32_t itn_ksg_pairs(void *p, int32_t n, const int32_t *pairs, int32_t count, const float *vals,
                      const uint16_t *cell, const int32_t *order, const float *sorted,
                      const int32_t *edge, int32_t G1, const int32_t *strips, const int32_t *fence, int32_t F,
                      const double *fenceLo, const double *fenceScale, const int32_t *group, const int32_t *tie,
                      const int32_t *tieSlot, const uint8_t *finite, const int64_t *psiFixed, const double *psi,
                      double *mi, uint8_t *done) {
  for (int32_t q = 0; q < count; q++) {
    const int32_t a = pairs[2 * q], b = pairs[2 * q + 1];
    done[q] = 0;
    if (!finite[a] || !finite[b] || n <= 3) continue;
    const size_t oa = (size_t)a * n, ob = (size_t)b * n, ta = (size_t)tieSlot[a] * n, tb = (size_t)tieSlot[b] * n;
    const int heavy = tieSlot[a] >= 0 && tieSlot[b] >= 0; // both with a tie group of more than 3
    int64_t sum;
    if (itn_ksg_pair(p, n, vals + oa, cell + oa, order + oa, sorted + oa, edge + (size_t)a * G1, strips[a],
                     fence + (size_t)a * F, fenceLo[a], fenceScale[a], heavy ? group + ta : NULL,
                     heavy ? tie + ta : NULL, vals + ob, cell + ob, order + ob, sorted + ob, edge + (size_t)b * G1,
                     strips[b], fence + (size_t)b * F, fenceLo[b], fenceScale[b], heavy ? group + tb : NULL,
                     heavy ? tie + tb : NULL, psiFixed, &sum) != 0)
      continue;
    mi[q] = psi[n] + psi[3] - (double)sum / 68719476736.0 / n;
    done[q] = 1;
  }
  return 0;
}

/** The order-preserving 32 bits of a float (-0 as +0), as a double. */
static inline double fkey(float v) {
  uint32_t u;
  v = v + 0.0f;
  memcpy(&u, &v, 4);
  return (double)(u ^ ((uint32_t)((int32_t)u >> 31) | 0x80000000u));
}

/**
 * One neuron's preparation for the KSG kernels (plugins/mi/ksg.ts `prepNeuron`, float32 values), the same arrays:
 * `sorted` values, `rank` (position in `sorted`, ties broken by sample index), `order` (its inverse: the sample at
 * each position), `group` (first position of the sample's value) and `tie` (its tie group's size), the grid strips
 * (`cell` of each sample, `edge`: `G + 1` first positions, `G` from `gridSize`; strips cut only between tie groups)
 * and the fence table (`ITN_FENCE_BUCKETS * max(n, 1) + 1` entries) with
 * `meta = [strips, fenceLo, fenceScale, maxTie]` (the largest tie group). The order is an LSD radix sort of the values' order-preserving 32 bits
 * (-0 as +0), stable, so equal values keep the order of their sample indices. Returns 0, -2 where a value is not finite (nothing written), or -1 without memory.
 */
int32_t itn_ksg_prep(int32_t n, const float *vals, float *sorted, int32_t *rank, int32_t *order, int32_t *group,
                     int32_t *tie, uint16_t *cell, int32_t *edge, int32_t *fence, double *meta) {
  // LSD radix sort of (key << 32 | sample) by the key's 11-, 11- and 10-bit digits (stable: ties keep the order of
  // their samples), all three digits counted in one pass, a digit shared by every key skipped
  uint64_t *buf = malloc(sizeof(uint64_t) * 2 * ((size_t)n + 1));
  int32_t *used = calloc((size_t)n + 1, sizeof(int32_t));
  uint16_t *stripOf = malloc(sizeof(uint16_t) * ((size_t)n + 1));
  int32_t *hist = calloc(3 * 2048, sizeof(int32_t));
  if (!buf || !used || !stripOf || !hist) {
    free(buf), free(used), free(stripOf), free(hist);
    return -1;
  }
  uint64_t *a = buf, *b = buf + n + 1;
  uint32_t finite = 1;
  for (int32_t i = 0; i < n; i++) {
    uint32_t u;
    const float v = vals[i];
    memcpy(&u, &v, 4);
    finite &= (u & 0x7f800000u) != 0x7f800000u;
    u = v == 0 ? 0 : u; // -0 ranks as +0 (equal values)
    // order-preserving: negative values' bits flipped, the sign bit set on the others (no branch on the sign)
    const uint32_t k = u ^ ((uint32_t)((int32_t)u >> 31) | 0x80000000u);
    a[i] = (uint64_t)k << 32 | (uint32_t)i;
    hist[k & 2047]++, hist[2048 + (k >> 11 & 2047)]++, hist[4096 + (k >> 22)]++;
  }
  if (!finite) {
    free(buf), free(used), free(stripOf), free(hist);
    return -2;
  }
  for (int d = 0; d < 3 && n > 0; d++) {
    int32_t *count = hist + 2048 * d;
    const int shift = 32 + 11 * d;
    if (count[a[0] >> shift & 2047] == n) continue; // one digit for all: already in order
    for (int32_t v = 0, sum = 0; v < 2048; v++) {
      const int32_t c = count[v];
      count[v] = sum, sum += c;
    }
    for (int32_t i = 0; i < n; i++) b[count[a[i] >> shift & 2047]++] = a[i];
    uint64_t *t = a;
    a = b, b = t;
  }
  int32_t start = 0;
  uint32_t last = 0;
  for (int32_t p = 0; p < n; p++) {
    const int32_t i = (int32_t)(uint32_t)a[p];
    const uint32_t k = (uint32_t)(a[p] >> 32);
    sorted[p] = vals[i], order[p] = i;
    if (p > 0 && k != last) start = p;
    last = k;
    rank[i] = p, group[i] = start;
    used[start]++;
  }
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
  int32_t maxTie = 0;
  for (int32_t i = 0; i < n; i++) {
    tie[i] = used[group[i]], cell[i] = stripOf[rank[i]];
    maxTie = tie[i] > maxTie ? tie[i] : maxTie;
  }
  // the fence table: ITN_FENCE_BUCKETS buckets a sample between the 0.5% and 99.5% quantiles
  const int32_t M = (n > 1 ? n : 1) * ITN_FENCE_BUCKETS;
  const double lo = n > 0 ? sorted[(int32_t)floor(0.005 * (n - 1))] : 0;
  const double hi = n > 0 ? sorted[(int32_t)ceil(0.995 * (n - 1))] : 0;
  double scale = hi > lo ? M / (hi - lo) : 0;
  if (!isfinite(scale)) scale = 0;
  // entry j: the first position whose bucket is at least j, i.e. how many positions have a bucket below j (buckets
  // rise with the position): counted, then summed (no branch a sample)
  memset(fence, 0, sizeof(int32_t) * ((size_t)M + 1));
  for (int32_t p = 0; p < n; p++) {
    double q = (sorted[p] - lo) * scale; // plugins/mi/ksg.ts `fenceBucket`
    q = q < M - 1 ? q : M - 1;
    q = q > 0 ? q : 0;
    fence[(int32_t)q + 1]++;
  }
  // the same over the values' order-preserving bits (about a logarithmic scale: heavy tails), kept where its buckets
  // are less crowded (sum of squared counts)
  double flo = lo, fsc = scale;
  int32_t *alt = calloc((size_t)M + 1, sizeof(int32_t));
  if (alt && n > 0) {
    const double klo = fkey(sorted[(int32_t)floor(0.005 * (n - 1))]), khi = fkey(sorted[(int32_t)ceil(0.995 * (n - 1))]);
    const double ksc = khi > klo ? M / (khi - klo) : 0;
    for (int32_t p = 0; p < n; p++) {
      double q = (fkey(sorted[p]) - klo) * ksc;
      q = q < M - 1 ? q : M - 1;
      q = q > 0 ? q : 0;
      alt[(int32_t)q + 1]++;
    }
    double s1 = 0, s2 = 0;
    for (int32_t j = 1; j <= M; j++) s1 += (double)fence[j] * fence[j], s2 += (double)alt[j] * alt[j];
    if (s2 < s1 && ksc > 0) memcpy(fence, alt, sizeof(int32_t) * ((size_t)M + 1)), flo = klo, fsc = -ksc;
  }
  free(alt);
  for (int32_t j = 1; j <= M; j++) fence[j] += fence[j - 1];
  meta[0] = n > 0 ? strip + 1 : 0, meta[1] = flo, meta[2] = fsc, meta[3] = maxTie;
  free(buf), free(used), free(stripOf), free(hist);
  return 0;
}
