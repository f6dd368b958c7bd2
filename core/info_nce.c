/*
 * info_nce.c - InfoNCE forward and backward (info_nce.h; semantics in
 * docs/semantics.md section 7).
 *
 * Layout of the work buffer (doubles, see nce_layout()):
 *   z      2n x d   prepared query rows then positive rows (normalized
 *                   copies, or plain copies), so z is cat(q^, k^) for nt_xent
 *   neg    nv x d   prepared negatives (nv = m, or n*m when paired)
 *   norm   2n + nv  vector norms (normalize only)
 *   lse    r        row log-sum-exp (r = 2n for nt_xent, n otherwise)
 *   lsec   n        column log-sum-exp (symmetric only)
 *   gv     r        upstream gradient per sample, contiguous (backward only)
 *   av     r        nt_xent backward: g_i exp(c - lse_i), see nce_ntx_row2
 *   slots  slots x slot_size   per-slot similarity block
 *
 * Every similarity block is a cblas_dgemm of a fixed number of rows (a
 * multiple of 64 chosen by nce_block_rows() from the shapes alone) against
 * all of z (or the negatives) with the full inner dimension d, so a block's
 * values depend on the shapes only. Each block writes only its own rows of
 * the outputs (losses, lse values, gradient rows); the only values read
 * across blocks are vectors completed by an earlier pass. Elementwise work
 * goes through loss_vexp(), whose results do not depend on an element's
 * position. Hence the results are bit-identical whatever executor runs the
 * blocks.
 *
 * Passes, with S the logits (similarities / tau), G = dL/dS and g the
 * upstream gradient per sample:
 *   pairs       rows:  S[I,:], lse, loss; G[I,:] = g (P - I); dq = G k / tau
 *               cols:  S[:,J] again; dk[J] = G[:,J]^T q / tau
 *   symmetric   rows:  S[I,:], row lse
 *               cols:  S[:,J], column lse, loss; dk[J] = H[:,J]^T q / tau
 *               rows:  S[I,:] again; dq[I] = H[I,:] k / tau
 *               with H = dL/dS = g_i (Pr - I)/2 + g_j (Pc - I)/2
 *   nt_xent     rows:  S[J,:], lse, loss
 *               rows:  S[J,:] again; H[J,:] = G[J,:] + G[:,J]^T (S is
 *                      symmetric); dz[J] = H[J,:] z / tau
 *   negatives   unpaired rows: [q.k, q.n_j] / tau, lse, loss, dq, dk;
 *               unpaired cols: dn[J] = G[:,J]^T q / tau
 *               paired rows: the same per row with its own negatives, and
 *               dn_ij = G_ij q_i / tau
 * Gradients with respect to the normalized vectors are written to the
 * caller's gradient arrays and then taken through F.normalize in place.
 *
 * Why the products cannot be fewer: a gradient needs every row's lse, which
 * needs the whole row of S, so S is formed once for the lse and once more
 * for the gradient (keeping it would take O(N^2) memory, and summing a
 * gradient over row blocks would split the inner dimension of its product).
 */
#include "info_nce.h"

#include <assert.h>
#include <cblas.h>
#include <emmintrin.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include "loss.h"
#include "sum.h"
#include "vmath.h"

/* F.normalize's default eps. */
#define NCE_EPS 1e-12

/* Vectors per block of the normalization passes. */
#define NCE_B ((size_t)LOSS_BLOCK_ROWS)

/*
 * Similarity blocks: up to NCE_BLOCK_MAX rows, at most NCE_SLOT_MAX doubles
 * (16 MiB). OpenBLAS packs the whole of the large operand on every call, so
 * a block of few rows spends much of its time packing; blocks grow to
 * NCE_BLOCK_MAX rows while that still pays for pairs, and NCE_SLOT_MAX caps
 * the wide nt_xent blocks, for which more rows no longer pay.
 */
#define NCE_BLOCK_MAX ((size_t)512)
#define NCE_SLOT_MAX  ((size_t)1 << 21)

/*
 * nt_xent's backward uses one exponential per logit when the row lse values
 * lie within NCE_SPREAD_MAX of each other and |g| exp(spread) stays below
 * exp(NCE_SCALE_MAX) (see nce_ntx_factor()).
 */
#define NCE_SPREAD_MAX 300.0
#define NCE_SCALE_MAX  600.0

struct nce_layout {
    size_t z, neg, norm, lse, lsec, gv, av, slots, total; /* offsets, size */
    size_t nv;                                            /* negative vectors */
    size_t brow, bcol; /* rows per block of the row and column passes */
    size_t slot_size;  /* doubles per slot */
};

static bool mul_ok(size_t a, size_t b, size_t *ret)
{
    return !__builtin_mul_overflow(a, b, ret);
}

static bool add_ok(size_t *acc, size_t b)
{
    return !__builtin_add_overflow(*acc, b, acc);
}

static bool nce_has_neg(const struct loss_nce_args *a)
{
    return a->negative_keys != NULL;
}

/*
 * Rows per similarity block for `rows` rows of `width` logits: the largest
 * multiple of 64 up to NCE_BLOCK_MAX that still leaves 4 blocks (work for
 * every thread of a small request) and keeps a block within NCE_SLOT_MAX
 * doubles; never less than 64. A function of the shapes only.
 */
static size_t nce_block_rows(size_t rows, size_t width)
{
    size_t b = NCE_BLOCK_MAX;

    while (b > NCE_B && (rows / 4 < b || width > NCE_SLOT_MAX / b))
        b -= NCE_B;
    return b;
}

/*
 * Offsets of every region of the work buffer. A slot holds the widest block
 * any pass forms (symmetric: one more row, a column's exponentials).
 */
static bool nce_layout(const struct loss_nce_args *a, size_t slots,
                       bool backward, struct nce_layout *ret)
{
    struct nce_layout l = {0};
    bool ntx = a->variant == LOSS_NCE_NT_XENT && !nce_has_neg(a);
    bool sym = a->variant == LOSS_NCE_SYMMETRIC && !nce_has_neg(a);
    size_t n2, sz, nvec, rows, w;

    if (!mul_ok(a->n, 2, &n2))
        return false;
    rows = ntx ? n2 : a->n;
    if (nce_has_neg(a)) {
        w = a->m + 1;
        if (w == 0)
            return false; /* m + 1 overflowed */
        if (a->paired) {
            if (!mul_ok(a->n, a->m, &l.nv))
                return false;
            l.brow = NCE_B; /* one row at a time */
            l.slot_size = w;
        } else {
            l.nv = a->m;
            l.brow = nce_block_rows(a->n, w);
            l.bcol = nce_block_rows(a->m, a->n);
            if (!mul_ok(l.brow, w, &l.slot_size))
                return false;
            if (!mul_ok(l.bcol, a->n, &sz))
                return false;
            if (backward && sz > l.slot_size)
                l.slot_size = sz;
        }
    } else {
        l.brow = l.bcol = nce_block_rows(rows, rows);
        if (!mul_ok(l.brow + sym, rows, &l.slot_size))
            return false;
    }

    l.z = 0;
    if (!mul_ok(n2, a->d, &sz))
        return false;
    l.neg = sz;
    if (!mul_ok(l.nv, a->d, &sz))
        return false;
    l.norm = l.neg;
    if (!add_ok(&l.norm, sz))
        return false;
    nvec = n2;
    if (!add_ok(&nvec, l.nv))
        return false;
    l.lse = l.norm;
    if (a->normalize && !add_ok(&l.lse, nvec))
        return false;
    l.lsec = l.lse;
    if (!add_ok(&l.lsec, rows))
        return false;
    l.gv = l.lsec;
    if (sym && !add_ok(&l.gv, a->n))
        return false;
    l.av = l.gv;
    if (backward && !add_ok(&l.av, rows))
        return false;
    l.slots = l.av;
    if (backward && ntx && !add_ok(&l.slots, rows))
        return false;
    if (!mul_ok(l.slot_size, slots, &sz))
        return false;
    l.total = l.slots;
    if (!add_ok(&l.total, sz))
        return false;
    *ret = l;
    return true;
}

size_t loss_nce_samples(const struct loss_nce_args *a)
{
    if (a->variant == LOSS_NCE_NT_XENT && !nce_has_neg(a))
        return 2 * a->n;
    return a->n;
}

bool loss_nce_workspace(const struct loss_nce_args *a, size_t slots,
                        bool backward, size_t *ret)
{
    struct nce_layout l;

    if (!nce_layout(a, slots ? slots : 1, backward, &l))
        return false;
    *ret = l.total;
    return true;
}

/*
 * C (m x n, ldc) = alpha * A (m x k, lda) * op(B), op(B) = B^T for a stored
 * n x k B, B for a stored k x n B; beta = 0. Empty products are handled here
 * because BLAS rejects leading dimensions of 0.
 */
static void nce_gemm(bool trans_b, size_t m, size_t n, size_t k, double alpha,
                     const double *A, size_t lda, const double *B, size_t ldb,
                     double *C, size_t ldc)
{
    if (m == 0 || n == 0)
        return;
    if (k == 0) {
        for (size_t i = 0; i < m; i++)
            memset(C + i * ldc, 0, n * sizeof(*C));
        return;
    }
    assert(m <= INT_MAX && n <= INT_MAX && k <= INT_MAX);
    assert(lda <= INT_MAX && ldb <= INT_MAX && ldc <= INT_MAX);
    cblas_dgemm(CblasRowMajor, CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (blasint)m, (blasint)n,
                (blasint)k, alpha, A, (blasint)lda, B, (blasint)ldb, 0.0, C,
                (blasint)ldc);
}

/* x . y in index order (a plain loop: BLAS ddot may reorder). */
static double nce_dot(const double *x, const double *y, size_t d)
{
    double s = 0.0;

    for (size_t k = 0; k < d; k++)
        s += x[k] * y[k];
    return s;
}

/*
 * Elementwise loops over a row of logits. The NCE_CLONES ones are also
 * compiled for AVX2 without FMA: they only subtract, multiply and add, each
 * rounded once, so every clone gives the same bits. Exponentials are taken
 * NCE_CHUNK at a time, while the chunk is in L1 (loss_vexp's results do not
 * depend on where an element sits in the array).
 */
#define NCE_CLONES __attribute__((target_clones("avx2", "default")))
#define NCE_CHUNK  ((size_t)512)

/*
 * The largest of s[0..w), NaN ignored (-inf for w == 0). maxpd(x, m) is
 * x > m ? x : m, so a NaN x leaves m alone; a maximum does not depend on
 * the order, so the accumulators change nothing but speed.
 */
static double nce_max(const double *s, size_t w)
{
    __m128d m0 = _mm_set1_pd(-INFINITY), m1 = m0, m2 = m0, m3 = m0;
    double r = -INFINITY, t[2];
    size_t j = 0;

    for (; j + 8 <= w; j += 8) {
        m0 = _mm_max_pd(_mm_loadu_pd(s + j), m0);
        m1 = _mm_max_pd(_mm_loadu_pd(s + j + 2), m1);
        m2 = _mm_max_pd(_mm_loadu_pd(s + j + 4), m2);
        m3 = _mm_max_pd(_mm_loadu_pd(s + j + 6), m3);
    }
    m0 = _mm_max_pd(_mm_max_pd(m0, m1), _mm_max_pd(m2, m3));
    _mm_storeu_pd(t, m0);
    for (; j < w; j++)
        r = s[j] > r ? s[j] : r;
    r = t[0] > r ? t[0] : r;
    return t[1] > r ? t[1] : r;
}

/* s[i] = exp(s[i] - c) */
NCE_CLONES static void nce_exp_shift(double *s, size_t w, double c)
{
    for (size_t i0 = 0; i0 < w; i0 += NCE_CHUNK) {
        size_t len = w - i0 < NCE_CHUNK ? w - i0 : NCE_CHUNK;
        double *x = s + i0;

        for (size_t i = 0; i < len; i++)
            x[i] -= c;
        loss_vexp(x, x, len);
    }
}

/* s[i] = g[i] exp(s[i] - c[i]) */
NCE_CLONES static void nce_exp_sub_mul(double *s, const double *c,
                                       const double *g, size_t w)
{
    for (size_t i0 = 0; i0 < w; i0 += NCE_CHUNK) {
        size_t len = w - i0 < NCE_CHUNK ? w - i0 : NCE_CHUNK;
        double *x = s + i0;

        for (size_t i = 0; i < len; i++)
            x[i] -= c[i0 + i];
        loss_vexp(x, x, len);
        for (size_t i = 0; i < len; i++)
            x[i] *= g[i0 + i];
    }
}

/* s[i] = exp(s[i] - c) (a + b[i]) */
NCE_CLONES static void nce_exp_shift_mul(double *s, double c, double a,
                                         const double *b, size_t w)
{
    for (size_t i0 = 0; i0 < w; i0 += NCE_CHUNK) {
        size_t len = w - i0 < NCE_CHUNK ? w - i0 : NCE_CHUNK;
        double *x = s + i0;

        for (size_t i = 0; i < len; i++)
            x[i] -= c;
        loss_vexp(x, x, len);
        for (size_t i = 0; i < len; i++)
            x[i] *= a + b[i0 + i];
    }
}

/* s[i] *= c */
NCE_CLONES static void nce_scale(double *s, size_t w, double c)
{
    for (size_t i = 0; i < w; i++)
        s[i] *= c;
}

/*
 * Replaces s[0..w) by exp(s - max) and returns log-sum-exp; *ret_sum gets
 * the sum of the exponentials (summed by loss_sum, so in a fixed order).
 * A NaN logit makes the whole row NaN, as PyTorch's max propagates it.
 */
static double nce_row_lse(double *s, size_t w, double *ret_sum)
{
    double mx = nce_max(s, w), sum;

    nce_exp_shift(s, w, mx);
    sum = loss_sum(s, w);
    if (isnan(sum)) {
        for (size_t j = 0; j < w; j++)
            s[j] = NAN;
        *ret_sum = NAN;
        return NAN;
    }
    *ret_sum = sum;
    return mx + log(sum);
}

struct nce_job {
    const struct loss_nce_args *a;
    size_t n, d, m, rows;
    size_t brow, bcol; /* rows per block of the row and column passes */
    double inv_t;
    const double *z, *q, *k, *neg; /* prepared vectors; q = z, k = z + n*d */
    double *norm, *lse, *lsec;
    double *gv; /* g per sample, contiguous */
    double *av; /* nt_xent: g_i exp(c - lse_i) when factored */
    double c;   /* nt_xent: the shift c of av */
    bool factored;
    double *scratch;
    size_t slot_size;
    double *out;
    double *gq, *gk, *gn;
    /* normalization blocks */
    const double *src;
    double *dst;
    double *nrm;
    double *grad;
    size_t count;
};

static double *nce_slot(const struct nce_job *j, size_t slot)
{
    return j->scratch + slot * j->slot_size;
}

static void nce_block_range(size_t block, size_t per, size_t count, size_t *r0,
                            size_t *r1)
{
    *r0 = block * per;
    *r1 = *r0 + per < count ? *r0 + per : count;
}

/* dst = src / max(|src|, eps) per vector, or a plain copy. */
static void nce_prep_block(void *arg, size_t block, size_t slot)
{
    const struct nce_job *j = arg;
    size_t v0, v1, d = j->d;

    (void)slot;
    nce_block_range(block, NCE_B, j->count, &v0, &v1);
    for (size_t v = v0; v < v1; v++) {
        const double *x = j->src + v * d;
        double *y = j->dst + v * d, nrm, den;

        if (!j->a->normalize) {
            memcpy(y, x, d * sizeof(*y));
            continue;
        }
        nrm = sqrt(nce_dot(x, x, d));
        /* clamp_min(norm, eps): NaN stays NaN */
        den = nrm < NCE_EPS ? NCE_EPS : nrm;
        for (size_t k = 0; k < d; k++)
            y[k] = x[k] / den;
        j->nrm[v] = nrm;
    }
}

/*
 * F.normalize backward in place, as PyTorch's autograd takes it through
 * x / clamp_min(|x|, eps): clamp_min passes the gradient for |x| >= eps, so
 * grad = (g - (g . x^) x^) / |x| there, and g / eps below eps (the norm then
 * gets no gradient).
 */
static void nce_normback_block(void *arg, size_t block, size_t slot)
{
    const struct nce_job *j = arg;
    size_t v0, v1, d = j->d;

    (void)slot;
    nce_block_range(block, NCE_B, j->count, &v0, &v1);
    for (size_t v = v0; v < v1; v++) {
        const double *xh = j->dst + v * d;
        double *gr = j->grad + v * d, nrm = j->nrm[v], c;

        if (!(nrm >= NCE_EPS)) {
            if (isnan(nrm)) {
                for (size_t k = 0; k < d; k++)
                    gr[k] = NAN;
                continue;
            }
            for (size_t k = 0; k < d; k++)
                gr[k] = gr[k] / NCE_EPS;
            continue;
        }
        c = nce_dot(gr, xh, d);
        for (size_t k = 0; k < d; k++)
            gr[k] = (gr[k] - c * xh[k]) / nrm;
    }
}

static void nce_run_vectors(struct nce_job *j, loss_block_fn fn,
                            const double *src, double *dst, double *nrm,
                            double *grad, size_t count,
                            const struct loss_exec *ex)
{
    j->src = src;
    j->dst = dst;
    j->nrm = nrm;
    j->grad = grad;
    j->count = count;
    loss_exec_run(ex, loss_blocks(count, NCE_B), fn, j);
}

/* pairs, rows: loss and lse of rows I; G[I,:] and dq[I] = G k / tau. */
static void nce_pairs_row(void *arg, size_t block, size_t slot)
{
    const struct nce_job *j = arg;
    size_t i0, i1, n = j->n, d = j->d;
    double *S = nce_slot(j, slot);

    nce_block_range(block, j->brow, n, &i0, &i1);
    nce_gemm(true, i1 - i0, n, d, j->inv_t, j->q + i0 * d, d, j->k, d, S, n);
    for (size_t i = i0; i < i1; i++) {
        double *s = S + (i - i0) * n, sii = s[i], sum, lse, c;

        lse = nce_row_lse(s, n, &sum);
        j->lse[i] = lse;
        j->out[i] = lse - sii;
        if (j->gq == NULL)
            continue;
        c = j->gv[i] / sum; /* P = e / sum */
        nce_scale(s, n, c);
        s[i] -= j->gv[i];
    }
    if (j->gq != NULL)
        nce_gemm(false, i1 - i0, d, n, j->inv_t, S, n, j->k, d, j->gq + i0 * d,
                 d);
}

/* t[i] = g_i exp(t[i] - lse_i): column c of G, the diagonal term aside. */
static void nce_col_prob(const struct nce_job *j, double *t, size_t w)
{
    nce_exp_sub_mul(t, j->lse, j->gv, w);
}

/* pairs, columns: dk[J] = G[:,J]^T q / tau with G from the row lse. */
static void nce_pairs_col(void *arg, size_t block, size_t slot)
{
    const struct nce_job *j = arg;
    size_t c0, c1, n = j->n, d = j->d;
    double *T = nce_slot(j, slot);

    nce_block_range(block, j->bcol, n, &c0, &c1);
    nce_gemm(true, c1 - c0, n, d, j->inv_t, j->k + c0 * d, d, j->q, d, T, n);
    for (size_t c = c0; c < c1; c++) {
        double *t = T + (c - c0) * n; /* t[i] = S[i][c] */

        nce_col_prob(j, t, n);
        t[c] -= j->gv[c];
    }
    nce_gemm(false, c1 - c0, d, n, j->inv_t, T, n, j->q, d, j->gk + c0 * d, d);
}

/* symmetric, pass 1: row lse; out[i] holds the row loss for now. */
static void nce_sym_row1(void *arg, size_t block, size_t slot)
{
    const struct nce_job *j = arg;
    size_t i0, i1, n = j->n, d = j->d;
    double *S = nce_slot(j, slot);

    nce_block_range(block, j->brow, n, &i0, &i1);
    nce_gemm(true, i1 - i0, n, d, j->inv_t, j->q + i0 * d, d, j->k, d, S, n);
    for (size_t i = i0; i < i1; i++) {
        double *s = S + (i - i0) * n, sii = s[i], sum;

        j->lse[i] = nce_row_lse(s, n, &sum);
        j->out[i] = j->lse[i] - sii;
    }
}

/*
 * symmetric, pass 2 (columns): column lse and the per-sample loss
 * (row loss + column loss) / 2; with gradients, the block
 * H[:,J]^T = (g_i (Pr - I) + g_j (Pc - I))^T / 2 and dk[J] = H^T q / tau.
 * The row after the slot's block holds the column's exponentials, so S
 * itself stays available for exp(S - lse_row).
 */
static void nce_sym_col(void *arg, size_t block, size_t slot)
{
    const struct nce_job *j = arg;
    size_t c0, c1, n = j->n, d = j->d;
    double *T = nce_slot(j, slot), *e = T + j->bcol * n;

    nce_block_range(block, j->bcol, n, &c0, &c1);
    nce_gemm(true, c1 - c0, n, d, j->inv_t, j->k + c0 * d, d, j->q, d, T, n);
    for (size_t c = c0; c < c1; c++) {
        double *t = T + (c - c0) * n, scc = t[c], sum, lsec, hc;

        memcpy(e, t, n * sizeof(*e));
        lsec = nce_row_lse(e, n, &sum);
        j->lsec[c] = lsec;
        j->out[c] = 0.5 * (j->out[c] + (lsec - scc));
        if (j->gk == NULL)
            continue;
        hc = 0.5 * j->gv[c] / sum;
        nce_col_prob(j, t, n);
        for (size_t i = 0; i < n; i++)
            t[i] = 0.5 * t[i] + hc * e[i];
        t[c] -= j->gv[c];
    }
    if (j->gk != NULL)
        nce_gemm(false, c1 - c0, d, n, j->inv_t, T, n, j->q, d, j->gk + c0 * d,
                 d);
}

/* symmetric, pass 3 (rows, backward): dq[I] = H[I,:] k / tau. */
static void nce_sym_row2(void *arg, size_t block, size_t slot)
{
    const struct nce_job *j = arg;
    size_t i0, i1, n = j->n, d = j->d;
    double *S = nce_slot(j, slot), *e = S + j->brow * n;

    nce_block_range(block, j->brow, n, &i0, &i1);
    nce_gemm(true, i1 - i0, n, d, j->inv_t, j->q + i0 * d, d, j->k, d, S, n);
    for (size_t i = i0; i < i1; i++) {
        double *s = S + (i - i0) * n, hi = 0.5 * j->gv[i];

        memcpy(e, s, n * sizeof(*e));
        nce_exp_sub_mul(e, j->lsec, j->gv, n);
        nce_exp_shift(s, n, j->lse[i]);
        for (size_t c = 0; c < n; c++)
            s[c] = hi * s[c] + 0.5 * e[c];
        s[i] -= j->gv[i];
    }
    nce_gemm(false, i1 - i0, d, n, j->inv_t, S, n, j->k, d, j->gq + i0 * d, d);
}

/* nt_xent, pass 1: S[J,:] = z_J z^T / tau (diagonal masked), lse, loss. */
static void nce_ntx_row1(void *arg, size_t block, size_t slot)
{
    const struct nce_job *j = arg;
    size_t r0, r1, n = j->n, rows = j->rows, d = j->d;
    double *S = nce_slot(j, slot);

    nce_block_range(block, j->brow, rows, &r0, &r1);
    nce_gemm(true, r1 - r0, rows, d, j->inv_t, j->z + r0 * d, d, j->z, d, S,
             rows);
    for (size_t r = r0; r < r1; r++) {
        double *s = S + (r - r0) * rows, sp, sum;
        size_t p = r < n ? r + n : r - n;

        if (j->a->mask_self)
            s[r] = -INFINITY;
        sp = s[p];
        j->lse[r] = nce_row_lse(s, rows, &sum);
        j->out[r] = j->lse[r] - sp;
    }
}

/*
 * nt_xent, between the passes: H[r][i] = g_r exp(S_ri - lse_r) +
 * g_i exp(S_ri - lse_i) takes one exponential per logit when written
 * exp(S_ri - c) (a_r + a_i) with c = max lse and a_i = g_i exp(c - lse_i).
 * That is safe when every lse and g is finite, the lse values lie within
 * NCE_SPREAD_MAX (an exp(S_ri - c) that underflows then stands for a term
 * below exp(-745 + NCE_SPREAD_MAX) |g|, which PyTorch's own rounding
 * exceeds) and |g| exp(spread) is far from overflowing. Otherwise the
 * second pass takes both exponentials. Serial and in index order.
 */
static bool nce_ntx_factor(struct nce_job *j)
{
    double hi = -INFINITY, lo = INFINITY, gmax = 0.0;

    for (size_t r = 0; r < j->rows; r++) {
        double l = j->lse[r], ga = fabs(j->gv[r]);

        if (!isfinite(l) || !isfinite(ga))
            return false;
        hi = l > hi ? l : hi;
        lo = l < lo ? l : lo;
        gmax = ga > gmax ? ga : gmax;
    }
    if (j->rows == 0 || hi - lo > NCE_SPREAD_MAX ||
        (gmax > 0.0 && log(gmax) + (hi - lo) > NCE_SCALE_MAX))
        return false;
    for (size_t r = 0; r < j->rows; r++)
        j->av[r] = hi - j->lse[r];
    loss_vexp(j->av, j->av, j->rows);
    for (size_t r = 0; r < j->rows; r++)
        j->av[r] *= j->gv[r];
    j->c = hi;
    return true;
}

/*
 * nt_xent, pass 2 (backward): S[J,:] again and, S being symmetric,
 * H[J,:] = G[J,:] + G[:,J]^T with G = g (P - Y), so
 * H[r][i] = g_r exp(S_ri - lse_r) + g_i exp(S_ri - lse_i) - Y terms;
 * dz[J] = H[J,:] z / tau, written to the query or positive gradient rows.
 * Rows whose gradient was not asked for are skipped.
 */
static void nce_ntx_row2(void *arg, size_t block, size_t slot)
{
    const struct nce_job *j = arg;
    size_t r0, r1, n = j->n, rows = j->rows, d = j->d;
    double *S = nce_slot(j, slot);

    nce_block_range(block, j->brow, rows, &r0, &r1);
    if (j->gq == NULL && r0 < n)
        r0 = n < r1 ? n : r1;
    if (j->gk == NULL && r1 > n)
        r1 = n > r0 ? n : r0;
    if (r0 >= r1)
        return;
    nce_gemm(true, r1 - r0, rows, d, j->inv_t, j->z + r0 * d, d, j->z, d, S,
             rows);
    for (size_t r = r0; r < r1; r++) {
        double *s = S + (r - r0) * rows, gr = j->gv[r], lse = j->lse[r];
        size_t p = r < n ? r + n : r - n;

        if (j->a->mask_self)
            s[r] = -INFINITY; /* exp gives 0: no overflow on the diagonal */
        if (j->factored) {
            double ar = j->av[r];

            nce_exp_shift_mul(s, j->c, ar, j->av, rows);
        } else {
            for (size_t i = 0; i < rows; i++)
                s[i] = gr * exp(s[i] - lse) + j->gv[i] * exp(s[i] - j->lse[i]);
        }
        if (j->a->mask_self)
            s[r] = 0.0;
        s[p] -= gr + j->gv[p];
    }
    if (r0 < n) {
        size_t e = r1 < n ? r1 : n;

        nce_gemm(false, e - r0, d, rows, j->inv_t, S, rows, j->z, d,
                 j->gq + r0 * d, d);
    }
    if (r1 > n) {
        size_t b = r0 > n ? r0 : n;

        nce_gemm(false, r1 - b, d, rows, j->inv_t, S + (b - r0) * rows, rows,
                 j->z, d, j->gk + (b - n) * d, d);
    }
}

/*
 * Logits row i with explicit negatives: [q_i . k_i, q_i . n_j ...] / tau in
 * L[0..m]; replaces L by G_i = g_i (P - e_0) when grad is true and writes
 * the loss and lse of row i.
 */
static void nce_neg_logits(const struct nce_job *j, size_t i, double *L,
                           bool grad)
{
    size_t w = j->m + 1;
    double l0 = L[0], sum, gi;

    j->lse[i] = nce_row_lse(L, w, &sum);
    j->out[i] = j->lse[i] - l0;
    if (!grad)
        return;
    gi = j->gv[i];
    for (size_t c = 0; c < w; c++)
        L[c] *= gi / sum;
    L[0] -= gi;
}

/* dq_i += G_i0 k_i / tau and dk_i = G_i0 q_i / tau (the positive column). */
static void nce_neg_positive(const struct nce_job *j, size_t i, double gi0)
{
    size_t d = j->d;
    double c = gi0 * j->inv_t;

    if (j->gq != NULL)
        for (size_t k = 0; k < d; k++)
            j->gq[i * d + k] += c * j->k[i * d + k];
    if (j->gk != NULL)
        for (size_t k = 0; k < d; k++)
            j->gk[i * d + k] = c * j->q[i * d + k];
}

/* unpaired negatives, rows: loss, lse; dq and dk of rows I. */
static void nce_unpaired_row(void *arg, size_t block, size_t slot)
{
    const struct nce_job *j = arg;
    size_t i0, i1, m = j->m, w = m + 1, d = j->d;
    double *L = nce_slot(j, slot);
    bool grad = j->gq != NULL || j->gk != NULL;

    nce_block_range(block, j->brow, j->n, &i0, &i1);
    nce_gemm(true, i1 - i0, m, d, j->inv_t, j->q + i0 * d, d, j->neg, d, L + 1,
             w);
    for (size_t i = i0; i < i1; i++) {
        double *l = L + (i - i0) * w;

        l[0] = nce_dot(j->q + i * d, j->k + i * d, d) * j->inv_t;
        nce_neg_logits(j, i, l, grad);
    }
    if (!grad)
        return;
    if (j->gq != NULL)
        nce_gemm(false, i1 - i0, d, m, j->inv_t, L + 1, w, j->neg, d,
                 j->gq + i0 * d, d);
    for (size_t i = i0; i < i1; i++)
        nce_neg_positive(j, i, L[(i - i0) * w]);
}

/* unpaired negatives, columns: dn[J] = G[:,J]^T q / tau. */
static void nce_unpaired_col(void *arg, size_t block, size_t slot)
{
    const struct nce_job *j = arg;
    size_t c0, c1, n = j->n, d = j->d;
    double *T = nce_slot(j, slot);

    nce_block_range(block, j->bcol, j->m, &c0, &c1);
    nce_gemm(true, c1 - c0, n, d, j->inv_t, j->neg + c0 * d, d, j->q, d, T, n);
    for (size_t c = c0; c < c1; c++)
        nce_col_prob(j, T + (c - c0) * n, n);
    nce_gemm(false, c1 - c0, d, n, j->inv_t, T, n, j->q, d, j->gn + c0 * d, d);
}

/* paired negatives, rows: each row with its own m negatives. */
static void nce_paired_row(void *arg, size_t block, size_t slot)
{
    const struct nce_job *j = arg;
    size_t i0, i1, m = j->m, w = m + 1, d = j->d;
    double *L = nce_slot(j, slot);
    bool grad = j->gq != NULL || j->gk != NULL || j->gn != NULL;

    nce_block_range(block, j->brow, j->n, &i0, &i1);
    for (size_t i = i0; i < i1; i++) {
        const double *ni = j->neg + i * m * d, *qi = j->q + i * d;

        nce_gemm(true, 1, m, d, j->inv_t, qi, d, ni, d, L + 1, w);
        L[0] = nce_dot(qi, j->k + i * d, d) * j->inv_t;
        nce_neg_logits(j, i, L, grad);
        if (!grad)
            continue;
        if (j->gq != NULL)
            nce_gemm(false, 1, d, m, j->inv_t, L + 1, w, ni, d, j->gq + i * d,
                     d);
        nce_neg_positive(j, i, L[0]);
        if (j->gn == NULL)
            continue;
        for (size_t c = 0; c < m; c++) {
            double gc = L[1 + c] * j->inv_t, *gn = j->gn + (i * m + c) * d;

            for (size_t k = 0; k < d; k++)
                gn[k] = gc * qi[k];
        }
    }
}

static void nce_run_blocks(struct nce_job *j, size_t count, size_t per,
                           loss_block_fn fn, const struct loss_exec *ex)
{
    loss_exec_run(ex, loss_blocks(count, per), fn, j);
}

unsigned loss_nce_run(const struct loss_nce_args *a, double *out,
                      const double *g, size_t gstride, double *grad_query,
                      double *grad_positive, double *grad_negative,
                      double *work, const struct loss_exec *ex)
{
    struct nce_layout l;
    struct nce_job j = {0};
    bool neg = nce_has_neg(a), ok, backward;
    size_t n = a->n, d = a->d;
    double *zw;
    unsigned warn = 0;

    assert(a->temperature > 0.0 && isfinite(a->temperature));
    backward = g != NULL && (grad_query != NULL || grad_positive != NULL ||
                             (neg && grad_negative != NULL));
    ok = nce_layout(a, loss_exec_slots(ex), backward, &l);
    assert(ok);
    (void)ok;

    zw = work + l.z;
    j.a = a;
    j.n = n;
    j.d = d;
    j.m = neg ? a->m : 0;
    j.rows = a->variant == LOSS_NCE_NT_XENT && !neg ? 2 * n : n;
    j.brow = l.brow;
    j.bcol = l.bcol;
    j.inv_t = 1.0 / a->temperature;
    j.z = zw;
    j.q = zw;
    j.k = zw + n * d;
    j.neg = work + l.neg;
    j.norm = work + l.norm;
    j.lse = work + l.lse;
    j.lsec = work + l.lsec;
    j.gv = work + l.gv;
    j.av = work + l.av;
    j.scratch = work + l.slots;
    j.slot_size = l.slot_size;
    j.out = out;
    j.gq = backward ? grad_query : NULL;
    j.gk = backward ? grad_positive : NULL;
    j.gn = backward && neg ? grad_negative : NULL;
    if (backward)
        for (size_t i = 0; i < j.rows; i++)
            j.gv[i] = g[i * gstride];

    nce_run_vectors(&j, nce_prep_block, a->query, zw, j.norm, NULL, n, ex);
    nce_run_vectors(&j, nce_prep_block, a->positive_key, zw + n * d, j.norm + n,
                    NULL, n, ex);
    if (neg)
        nce_run_vectors(&j, nce_prep_block, a->negative_keys, work + l.neg,
                        j.norm + 2 * n, NULL, l.nv, ex);
    if (a->normalize)
        for (size_t v = 0; v < 2 * n + l.nv; v++)
            if (j.norm[v] <= NCE_EPS)
                warn |= LOSS_WARN_NORMALIZE_EPS;

    if (neg && a->paired) {
        nce_run_blocks(&j, n, j.brow, nce_paired_row, ex);
    } else if (neg) {
        nce_run_blocks(&j, n, j.brow, nce_unpaired_row, ex);
        if (j.gn != NULL)
            nce_run_blocks(&j, j.m, j.bcol, nce_unpaired_col, ex);
    } else if (a->variant == LOSS_NCE_PAIRS) {
        nce_run_blocks(&j, n, j.brow, nce_pairs_row, ex);
        if (j.gk != NULL)
            nce_run_blocks(&j, n, j.bcol, nce_pairs_col, ex);
    } else if (a->variant == LOSS_NCE_SYMMETRIC) {
        nce_run_blocks(&j, n, j.brow, nce_sym_row1, ex);
        nce_run_blocks(&j, n, j.bcol, nce_sym_col, ex);
        if (j.gq != NULL)
            nce_run_blocks(&j, n, j.brow, nce_sym_row2, ex);
    } else {
        nce_run_blocks(&j, j.rows, j.brow, nce_ntx_row1, ex);
        if (j.gq != NULL || j.gk != NULL) {
            j.factored = nce_ntx_factor(&j);
            nce_run_blocks(&j, j.rows, j.brow, nce_ntx_row2, ex);
        }
    }

    if (!a->normalize || !backward)
        return warn;
    if (j.gq != NULL)
        nce_run_vectors(&j, nce_normback_block, NULL, zw, j.norm, j.gq, n, ex);
    if (j.gk != NULL)
        nce_run_vectors(&j, nce_normback_block, NULL, zw + n * d, j.norm + n,
                        j.gk, n, ex);
    if (j.gn != NULL)
        nce_run_vectors(&j, nce_normback_block, NULL, work + l.neg,
                        j.norm + 2 * n, j.gn, l.nv, ex);
    return warn;
}
