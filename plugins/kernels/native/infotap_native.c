/*
 * infotap's native kernels, loaded through Deno's FFI by plugins/kernels/native/native.ts where `npm install` could
 * build them (scripts/build_native.sh; C, no dependency). Every result equals the WebAssembly and JavaScript paths'
 * bit for bit (integers, and float64 sums in the same order, compiled without contraction into FMA).
 *
 * Binned-MI joint counts as bit-matrix products: each neuron's codes become one bit set per bin (a bit per row), and
 * the joint count of bins (u, v) of a pair is popcount(bits_a[u] & bits_b[v]) summed over the rows, 512 rows per
 * AVX-512 VPOPCNTQ. Rows whose code is not a bin (non-finite values, NONFINITE = 255) are in no bit set, so they drop
 * out of every pair they are in, as on the other paths. The kernels need AVX-512 F, BW, VL, DQ and VPOPCNTDQ, checked at run
 * time (`itn_supported`); elsewhere the caller keeps its WebAssembly path.
 */
#include <stdint.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define ITN_X86 1
#define ITN_AVX512 __attribute__((target("avx2,avx512f,avx512bw,avx512vl,avx512dq,avx512vpopcntdq")))
#else
#define ITN_X86 0
#endif

/** A caller's bit sets (one context per JavaScript realm: workers never share one). */
typedef struct {
  uint64_t *bits; /* neurons x bins x words, 64-byte aligned */
  size_t cap;     /* uint64 words allocated */
  int32_t neurons, bins, words, rows;
} itn_ctx;

/** 1 where the CPU has what the AVX-512 kernels need (AVX-512 F, BW, VL, DQ, VPOPCNTDQ; BMI2), else 0. */
int32_t itn_supported(void) {
#if ITN_X86
  static int known = -1; // the same answer whichever thread asks first
  if (known < 0) {
    __builtin_cpu_init();
    known = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
            __builtin_cpu_supports("avx512vpopcntdq") && __builtin_cpu_supports("bmi2");
  }
  return known;
#else
  return 0;
#endif
}

/** A new context, or NULL. */
void *itn_new(void) { return calloc(1, sizeof(itn_ctx)); }

void itn_free(void *p) {
  itn_ctx *c = (itn_ctx *)p;
  if (!c) return;
  free(c->bits);
  free(c);
}

#if ITN_X86
/**
 * Builds the bit sets of `neurons` neurons' codes (`codes[a * stride + r]`, rows `[0, rows)`, bins `bins` <= 64).
 * Returns 0, or -1 where the memory could not be had.
 */
ITN_AVX512 int32_t itn_load_codes(void *p, const uint8_t *codes, int32_t neurons, int32_t stride, int32_t rows,
                                  int32_t bins) {
  itn_ctx *c = (itn_ctx *)p;
  const int32_t words = ((rows + 511) / 512) * 8;
  const size_t need = (size_t)neurons * bins * words;
  if (need > c->cap) {
    free(c->bits);
    c->bits = (uint64_t *)aligned_alloc(64, (need * 8 + 63) / 64 * 64);
    c->cap = c->bits ? need : 0;
    if (!c->bits) return -1;
  }
  c->neurons = neurons, c->bins = bins, c->words = words, c->rows = rows;
  for (int32_t a = 0; a < neurons; a++) {
    const uint8_t *src = codes + (size_t)a * stride;
    uint64_t *dst = c->bits + (size_t)a * bins * words;
    for (int32_t w = 0; w < words; w++) {
      const int32_t r0 = w * 64;
      __mmask64 valid;
      __m512i v;
      if (r0 + 64 <= rows) {
        valid = ~(__mmask64)0;
        v = _mm512_loadu_si512((const void *)(src + r0));
      } else if (r0 < rows) {
        valid = (~(__mmask64)0) >> (64 - (rows - r0));
        v = _mm512_maskz_loadu_epi8(valid, src + r0);
      } else {
        valid = 0;
        v = _mm512_setzero_si512();
      }
      for (int32_t u = 0; u < bins; u++) {
        dst[(size_t)u * words + w] = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8((char)u)) & valid;
      }
    }
  }
  return 0;
}

/** Sum of the eight 64-bit lanes. */
ITN_AVX512 static inline uint64_t lanes(__m512i x) { return (uint64_t)_mm512_reduce_add_epi64(x); }

/**
 * Adds the joint counts of pairs `[p0, p1)` (`pairs[2p]`, `pairs[2p + 1]`, neurons of the loaded codes) into
 * `counts[(p - from) * B^2 + u * B + v]`: bins in tiles of 4 x 4 (sixteen accumulators, eight loads a step of 512
 * rows), the rest cell by cell.
 */
ITN_AVX512 static void pair_counts(void *p, const int32_t *pairs, int32_t p0, int32_t p1, uint32_t *counts,
                                   int32_t from) {
  itn_ctx *c = (itn_ctx *)p;
  const int32_t B = c->bins, W = c->words, B2 = B * B, full = B & ~3;
  // pairs visited by their second neuron (then in their given order): consecutive pairs of a chunk in a run's order share their
  // first neuron and walk the second, so each second neuron's bit sets are read once for the chunk's few first ones
  // (a stable counting sort: no state shared between threads, which may share this library)
  const int32_t m = p1 > p0 ? p1 - p0 : 0;
  int32_t *order = (int32_t *)malloc(sizeof(int32_t) * (size_t)(m + 1));
  int32_t *start = (int32_t *)calloc((size_t)c->neurons + 1, sizeof(int32_t));
  if (order && start) {
    for (int32_t q = p0; q < p1; q++) start[pairs[2 * q + 1] + 1]++;
    for (int32_t b = 0; b < c->neurons; b++) start[b + 1] += start[b];
    for (int32_t q = p0; q < p1; q++) order[start[pairs[2 * q + 1]]++] = q;
  } else {
    free(order);
    order = NULL;
  }
  free(start);
  for (int32_t o = p0; o < p1; o++) {
    const int32_t q = order ? order[o - p0] : o;
    const uint64_t *A = c->bits + (size_t)pairs[2 * q] * B * W;
    const uint64_t *Bb = c->bits + (size_t)pairs[2 * q + 1] * B * W;
    uint32_t *out = counts + (size_t)(q - from) * B2;
    for (int32_t u0 = 0; u0 < full; u0 += 4) {
      for (int32_t v0 = 0; v0 < full; v0 += 4) {
        __m512i s[16];
        for (int i = 0; i < 16; i++) s[i] = _mm512_setzero_si512();
        const uint64_t *a0 = A + (size_t)u0 * W, *b0 = Bb + (size_t)v0 * W;
        for (int32_t w = 0; w < W; w += 8) {
          const __m512i x0 = _mm512_load_si512((const void *)(a0 + w));
          const __m512i x1 = _mm512_load_si512((const void *)(a0 + W + w));
          const __m512i x2 = _mm512_load_si512((const void *)(a0 + 2 * W + w));
          const __m512i x3 = _mm512_load_si512((const void *)(a0 + 3 * W + w));
          const __m512i y0 = _mm512_load_si512((const void *)(b0 + w));
          const __m512i y1 = _mm512_load_si512((const void *)(b0 + W + w));
          const __m512i y2 = _mm512_load_si512((const void *)(b0 + 2 * W + w));
          const __m512i y3 = _mm512_load_si512((const void *)(b0 + 3 * W + w));
#define ITN_CELL(i, x, y) s[i] = _mm512_add_epi64(s[i], _mm512_popcnt_epi64(_mm512_and_si512(x, y)))
          ITN_CELL(0, x0, y0), ITN_CELL(1, x0, y1), ITN_CELL(2, x0, y2), ITN_CELL(3, x0, y3);
          ITN_CELL(4, x1, y0), ITN_CELL(5, x1, y1), ITN_CELL(6, x1, y2), ITN_CELL(7, x1, y3);
          ITN_CELL(8, x2, y0), ITN_CELL(9, x2, y1), ITN_CELL(10, x2, y2), ITN_CELL(11, x2, y3);
          ITN_CELL(12, x3, y0), ITN_CELL(13, x3, y1), ITN_CELL(14, x3, y2), ITN_CELL(15, x3, y3);
#undef ITN_CELL
        }
        // the sixteen sums: pairs of accumulators, then 128-bit blocks, in three rounds of adds (cells in order)
        __m512i t[8], v[4];
        for (int i = 0; i < 8; i++) {
          t[i] = _mm512_add_epi64(_mm512_unpacklo_epi64(s[2 * i], s[2 * i + 1]),
                                  _mm512_unpackhi_epi64(s[2 * i], s[2 * i + 1]));
        }
        for (int i = 0; i < 4; i++) {
          v[i] = _mm512_add_epi64(_mm512_shuffle_i64x2(t[2 * i], t[2 * i + 1], 0x88),
                                  _mm512_shuffle_i64x2(t[2 * i], t[2 * i + 1], 0xdd));
        }
        for (int h = 0; h < 2; h++) {
          // cells 8h .. 8h + 7: rows u0 + 2h and u0 + 2h + 1, columns v0 .. v0 + 3
          const __m256i c8 = _mm512_cvtepi64_epi32(
              _mm512_add_epi64(_mm512_shuffle_i64x2(v[2 * h], v[2 * h + 1], 0x88),
                               _mm512_shuffle_i64x2(v[2 * h], v[2 * h + 1], 0xdd)));
          uint32_t *r0 = out + (u0 + 2 * h) * B + v0, *r1 = r0 + B;
          _mm_storeu_si128((__m128i *)r0,
                           _mm_add_epi32(_mm_loadu_si128((const __m128i *)r0), _mm256_castsi256_si128(c8)));
          _mm_storeu_si128((__m128i *)r1,
                           _mm_add_epi32(_mm_loadu_si128((const __m128i *)r1), _mm256_extracti128_si256(c8, 1)));
        }
      }
    }
    // bins beyond the last whole tile: cell by cell
    for (int32_t u = 0; u < B; u++) {
      for (int32_t v = (u < full ? full : 0); v < B; v++) {
        const uint64_t *x = A + (size_t)u * W, *y = Bb + (size_t)v * W;
        __m512i s = _mm512_setzero_si512();
        for (int32_t w = 0; w < W; w += 8) {
          s = _mm512_add_epi64(s, _mm512_popcnt_epi64(_mm512_and_si512(_mm512_load_si512((const void *)(x + w)),
                                                                        _mm512_load_si512((const void *)(y + w)))));
        }
        out[u * B + v] += (uint32_t)lanes(s);
      }
    }
  }
  free(order);
}

/** One thread's share of {@link itn_pair_counts}. */
typedef struct {
  void *p;
  const int32_t *pairs;
  int32_t p0, p1, from;
  uint32_t *counts;
} itn_share;

static void *pair_counts_share(void *arg) {
  const itn_share *s = (const itn_share *)arg;
  pair_counts(s->p, s->pairs, s->p0, s->p1, s->counts, s->from);
  return NULL;
}

/**
 * Adds the joint counts of pairs `[p0, p1)` (`pairs[2p]`, `pairs[2p + 1]`, neurons of the loaded codes) into
 * `counts[(p - from) * B^2 + u * B + v]`, on `threads` threads (at most 64; each takes a contiguous share of the
 * pairs, so they write disjoint counts and read the shared bit sets); 1 runs on the caller's.
 */
void itn_pair_counts(void *p, const int32_t *pairs, int32_t p0, int32_t p1, uint32_t *counts, int32_t from,
                     int32_t threads) {
  const int32_t m = p1 - p0;
  if (threads > 64) threads = 64;
  if (threads > m / 64) threads = m / 64; // a few pairs are not worth a thread
  if (threads <= 1) {
    pair_counts(p, pairs, p0, p1, counts, from);
    return;
  }
  pthread_t tid[64];
  itn_share share[64];
  int started[64];
  for (int32_t t = 0; t < threads; t++) {
    share[t] = (itn_share){p, pairs, p0 + (int32_t)((int64_t)m * t / threads),
                           p0 + (int32_t)((int64_t)m * (t + 1) / threads), from, counts};
    // the last share runs here; a thread that cannot start leaves its share to this one too
    started[t] = t < threads - 1 && pthread_create(&tid[t], NULL, pair_counts_share, &share[t]) == 0;
  }
  for (int32_t t = 0; t < threads; t++) {
    if (!started[t]) pair_counts_share(&share[t]);
  }
  for (int32_t t = 0; t < threads; t++) {
    if (started[t]) pthread_join(tid[t], NULL);
  }
}
#else
int32_t itn_load_codes(void *p, const uint8_t *codes, int32_t neurons, int32_t stride, int32_t rows, int32_t bins) {
  (void)p, (void)codes, (void)neurons, (void)stride, (void)rows, (void)bins;
  return -1;
}
void itn_pair_counts(void *p, const int32_t *pairs, int32_t p0, int32_t p1, uint32_t *counts, int32_t from,
                     int32_t threads) {
  (void)p, (void)pairs, (void)p0, (void)p1, (void)counts, (void)from, (void)threads;
}
#endif

#if ITN_X86
/**
 * The MI of one 16 x 16 table as `mutual_information_one` below, with AVX-512: row sums, column sums and the
 * non-zero cells (compressed) a row at a time, the terms eight at a time (`(x / n) (log x + log n - log a - log b)`,
 * the same operations lane by lane, no contraction), into `terms`; returns their count (-1: no sum to take here).
 */
ITN_AVX512 static int32_t terms16(const uint32_t *c, const double *logs, double *terms, int32_t *nz, double *n_out) {
  __m512i col = _mm512_setzero_si512();
  double rowLog[16];
  int32_t k = 0;
  double n = 0;
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int a = 0; a < 16; a++) {
    const __m512i row = _mm512_loadu_si512((const void *)(c + 16 * a));
    col = _mm512_add_epi32(col, row);
    const double s = (double)(uint32_t)_mm512_reduce_add_epi32(row);
    rowLog[a] = s;
    n += s;
    const __mmask16 some = _mm512_test_epi32_mask(row, row);
    _mm512_mask_compressstoreu_epi32(nz + k, some, _mm512_add_epi32(lane, _mm512_set1_epi32(16 * a)));
    k += __builtin_popcount(some);
  }
  *n_out = n;
  if (n == 0 || n >= 65536) return -1;
  uint32_t colSum[16];
  _mm512_storeu_si512((void *)colSum, col);
  double colLog[16];
  for (int b = 0; b < 16; b++) colLog[b] = logs[colSum[b]];
  for (int a = 0; a < 16; a++) rowLog[a] = logs[(int32_t)rowLog[a]];
  const __m512d vn = _mm512_set1_pd(n), logN = _mm512_set1_pd(logs[(int32_t)n]);
  for (int32_t j = 0; j < k; j += 8) {
    const __mmask8 v = k - j >= 8 ? 0xff : (__mmask8)((1u << (k - j)) - 1);
    const __m256i at = _mm256_maskz_loadu_epi32(v, nz + j);
    const __m256i cx = _mm256_mmask_i32gather_epi32(_mm256_setzero_si256(), v, at, (const int *)c, 4);
    const __m256i ra = _mm256_srli_epi32(at, 4), cb = _mm256_and_si256(at, _mm256_set1_epi32(15));
    const __m512d xd = _mm512_cvtepu32_pd(cx);
    const __m512d lx = _mm512_mask_i32gather_pd(_mm512_setzero_pd(), v, cx, logs, 8);
    const __m512d la = _mm512_mask_i32gather_pd(_mm512_setzero_pd(), v, ra, rowLog, 8);
    const __m512d lb = _mm512_mask_i32gather_pd(_mm512_setzero_pd(), v, cb, colLog, 8);
    const __m512d t = _mm512_mul_pd(_mm512_div_pd(xd, vn), _mm512_sub_pd(_mm512_sub_pd(_mm512_add_pd(lx, logN), la), lb));
    _mm512_mask_storeu_pd(terms + j, v, t);
  }
  return k;
}

/** MI of `tables` 16 x 16 tables (see `itn_mutual_information`), two at a time so that their sums overlap. */
ITN_AVX512 static void mutual_information16(const uint32_t *counts, int32_t tables, const double *logs, double *mi,
                                            double *samples, double *scratch) {
  double *t1 = scratch, *t2 = scratch + 256;
  int32_t *nz = (int32_t *)(scratch + 512);
  for (int32_t t = 0; t < tables; t += 2) {
    const int two = t + 1 < tables;
    double n1 = 0, n2 = 0;
    const int32_t k1 = terms16(counts + (size_t)t * 256, logs, t1, nz, &n1);
    const int32_t k2 = two ? terms16(counts + (size_t)(t + 1) * 256, logs, t2, nz, &n2) : -1;
    double m1 = 0, m2 = 0;
    const int32_t both = k1 < k2 ? k1 : k2;
    int32_t j = 0;
    for (; j < both; j++) m1 += t1[j], m2 += t2[j];
    for (int32_t i = j; i < k1; i++) m1 += t1[i];
    for (int32_t i = j; i < k2; i++) m2 += t2[i];
    samples[t] = n1;
    mi[t] = k1 < 0 ? __builtin_nan("") : m1;
    if (two) samples[t + 1] = n2, mi[t + 1] = k2 < 0 ? __builtin_nan("") : m2;
  }
}
#endif

/**
 * Plug-in MI (nats) of `tables` contingency tables of `na x nb` cells (`counts[t * na * nb + a * nb + b]`), as
 * plugins/_shared/pair_counts.ts `mutualInformation` computes it: the same terms `(c / n) (log c + log n - log a -
 * log b)` added in the same order, every log read from `logs` (JavaScript's `Math.log` of the integers below 2^16).
 * `samples[t]` gets the table's count n. Tables with n >= 2^16 get `mi[t] = NaN` and `samples[t] = n` for the caller
 * to evaluate (their logs are not in the table); an empty table gets NaN and 0. `scratch`: at least
 * `max(na * nb + na + nb, 640)` doubles. 16 x 16 tables take the AVX-512 path where the CPU has it.
 */
void itn_mutual_information(const uint32_t *counts, int32_t tables, int32_t na, int32_t nb, const double *logs,
                            double *mi, double *samples, double *scratch) {
  const int32_t cells = na * nb;
#if ITN_X86
  if (na == 16 && nb == 16 && itn_supported()) {
    mutual_information16(counts, tables, logs, mi, samples, scratch);
    return;
  }
#endif
  int32_t *nz = (int32_t *)scratch;
  double *rowLog = scratch + (cells + 1) / 2, *colLog = rowLog + na;
  for (int32_t t = 0; t < tables; t++) {
    const uint32_t *c = counts + (size_t)t * cells;
    double n = 0;
    int32_t k = 0;
    for (int32_t a = 0; a < na; a++) {
      double s = 0;
      for (int32_t b = 0; b < nb; b++) {
        const uint32_t x = c[a * nb + b];
        s += x;
        nz[k] = a * nb + b;
        k += x > 0;
      }
      rowLog[a] = s;
      n += s;
    }
    samples[t] = n;
    if (n == 0 || n >= 65536) {
      mi[t] = __builtin_nan("");
      continue;
    }
    for (int32_t b = 0; b < nb; b++) {
      double s = 0;
      for (int32_t a = 0; a < na; a++) s += c[a * nb + b];
      colLog[b] = logs[(int32_t)s];
    }
    for (int32_t a = 0; a < na; a++) rowLog[a] = logs[(int32_t)rowLog[a]];
    const double logN = logs[(int32_t)n];
    double m = 0;
    for (int32_t j = 0; j < k; j++) {
      const int32_t i = nz[j], a = i / nb;
      const double x = c[i];
      m += (x / n) * (logs[(int32_t)x] + logN - rowLog[a] - colLog[i - a * nb]);
    }
    mi[t] = m;
  }
}
