/*
 * The body of the KSG pair kernel (plugins/kernels/native/ksg.c includes it twice: ITN_BODY_512 1 with AVX-512
 * code, built for CPUs that have it, and 0 for any other).
 */
ITN_BODY_ATTR static int32_t ITN_BODY_NAME(void *p, int32_t n, const float *xv, const uint16_t *xc, const int32_t *xr,
                                          const float *xs, const int32_t *xe, int32_t Gx, const int32_t *xf, double xlo,
                                          double xsc, const float *yv, const uint16_t *yc, const int32_t *yr,
                                          const float *ys, const int32_t *ye, int32_t Gy, const int32_t *yf, double ylo,
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
  const int use512 = ITN_BODY_512;
  (void)use512;
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
#if ITN_BODY_512
        if (use512 && !near) nearest3(px, py, q0, q1, rows, cy - y0, s, x, y, b);
        else
#endif
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
          int32_t far = 0; // whether a heavy point lies in the rectangle
#if ITN_BODY_512
          for (int32_t gy = Y0; gy <= Y1 && !far && dup; gy++) {
            for (int32_t gx = X0; gx <= X1; gx++) far |= heavy[gy * Gx + gx];
          }
          if (use512 && !far) {
            // the rectangle's ranges outside the block (none of them holds the sample itself)
            int32_t *r0 = c->r0, *r1 = c->r1, count = 0;
            for (int32_t gy = Y0; gy <= Y1; gy++) {
              const int32_t row = gy * Gx;
              if (gy < y0 || gy > y1) r0[count] = start[row + X0], r1[count++] = start[row + X1 + 1];
              else {
                if (X0 < x0) r0[count] = start[row + X0], r1[count++] = start[row + x0];
                if (X1 > x1) r0[count] = start[row + x1 + 1], r1[count++] = start[row + X1 + 1];
              }
            }
            insert_ranges(px, py, r0, r1, count, x, y, b);
          } else
#endif
            for (int32_t gy = Y0; gy <= Y1; gy++) {
              const int32_t row = gy * Gx;
              if (gy < y0 || gy > y1) scan(px, py, pw, start[row + X0], start[row + X1 + 1], s, x, y, b);
              else {
                if (X0 < x0) scan(px, py, pw, start[row + X0], start[row + x0], s, x, y, b);
                if (X1 > x1) scan(px, py, pw, start[row + x1 + 1], start[row + X1 + 1], s, x, y, b);
              }
            }
          (void)far;
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
  // pass 2: the counts, in a straight loop (eight jobs a step where the CPU has AVX-512)
  int64_t total = 0;
  int32_t j0 = 0;
#if ITN_BODY_512
  if (use512) {
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
#endif
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
