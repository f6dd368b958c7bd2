/*
 * test_pointwise.c - the element-wise losses of core/pointwise.c against
 * PyTorch 1.13.1 reference values, their quirks, empty and non-finite
 * inputs, broadcasting, finite differences of every gradient, and
 * bit-identity across executors.
 *
 * Tests that loop over many cases report every failing case by name (on
 * stderr, as TAP comments) and fail once at the end: one Check test per
 * table, not one fork per case.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loss.h"
#include "pointwise.h"
#include "testutil.h"

/* BCE's gradient EPSILON: the C float 1e-12f widened to double. */
#define BCE_EPS 9.999999960041972e-13

struct shape {
    size_t ndim;
    size_t dim[TENSOR_MAX_RANK];
};

/*
 * One reference case: per-element losses (reduction 'none') and the
 * gradients of sum_i g[i * gstride] * loss_i with respect to x and y.
 */
struct ref_case {
    const char *name;
    enum loss_pointwise_kind kind;
    double param;
    struct shape xs, ys, ws, pws; /* ws/pws unused when w/pw is NULL */
    const double *x, *y, *w, *pw, *g;
    size_t gstride;
    const double *loss, *gx, *gy;
    unsigned warn; /* expected LOSS_WARN_BCE_LOG_CLAMP (1) or 0 */
};

/*
 * Reference values produced by /usr/bin/python3 with torch 1.13.1
 * (torch.__version__ '1.13.0a0', Debian python3-torch), float64 on CPU, and
 * printed with repr():
 *   x, y = tensor(xs).requires_grad_(), tensor(ys).requires_grad_()
 *   l = F.mse_loss / l1_loss / smooth_l1_loss(beta=param) /
 *       huber_loss(delta=param) / binary_cross_entropy(weight=w) /
 *       binary_cross_entropy_with_logits(weight=w, pos_weight=pw) /
 *       kl_div(log_target=bool(param)) of (x, y, reduction='none')
 *   gstride 1: l.backward(g); gstride 0 with g = 1: l.sum().backward();
 *   gstride 0 with g = 1/n: l.mean().backward()
 *   cN_loss = l, cN_gx = x.grad, cN_gy = y.grad
 * warn is 1 when torch.log(x) (with y != 0) or torch.log(1 - x) (with
 * y != 1) is below -100 somewhere: only a clamp that reaches the loss warns.
 */
/* clang-format off */
static const double c0_x[] = {0.5, -1.25, 3.0, 0.0, 0.001, -2.5};
static const double c0_y[] = {0.25, 0.75, -1.0, 0.0, 0.002, -2.5};
static const double c0_loss[] = {0.0625, 4.0, 16.0, 0.0, 1e-06, 0.0};
static const double c0_g[] = {1.0, -0.5, 2.0, 1.0, 0.3, -1.5};
static const double c0_gx[] = {0.5, 2.0, 16.0, 0.0, -0.0006, -0.0};
static const double c0_gy[] = {-0.5, -2.0, -16.0, 0.0, 0.0006, -0.0};
static const double c1_x[] = {0.5, -1.25, 3.0, 0.0, 0.001, -2.5};
static const double c1_y[] = {0.25, 0.75, -1.0, 0.0, 0.002, -2.5};
static const double c1_loss[] = {0.0625, 4.0, 16.0, 0.0, 1e-06, 0.0};
static const double c1_g[] = {0.16666666666666666};
static const double c1_gx[] = {0.08333333333333333, -0.6666666666666666, 1.3333333333333333, 0.0, -0.0003333333333333333, 0.0};
static const double c1_gy[] = {-0.08333333333333333, 0.6666666666666666, -1.3333333333333333, 0.0, 0.0003333333333333333, 0.0};
static const double c2_x[] = {INFINITY, -INFINITY, NAN, 1.0, INFINITY};
static const double c2_y[] = {1.0, INFINITY, 0.0, NAN, INFINITY};
static const double c2_loss[] = {INFINITY, INFINITY, NAN, NAN, NAN};
static const double c2_g[] = {1.0, 1.0, 1.0, 1.0, 1.0};
static const double c2_gx[] = {INFINITY, -INFINITY, NAN, NAN, NAN};
static const double c2_gy[] = {-INFINITY, INFINITY, NAN, NAN, NAN};
static const double c3_x[] = {0.5, -1.25, 3.0, 0.0, 0.001, -2.5};
static const double c3_y[] = {0.1, -0.2, 0.3};
static const double c3_loss[] = {0.16000000000000003, 1.1025, 7.290000000000001, 0.010000000000000002, 0.040401000000000006, 7.839999999999999};
static const double c3_g[] = {1.0, -0.5, 2.0, 1.0, 0.3, -1.5};
static const double c3_gx[] = {0.8, 1.05, 10.8, -0.2, 0.1206, 8.399999999999999};
static const double c3_gy[] = {-0.6000000000000001, -1.1706, -19.2};
static const double c4_x[] = {0.1, -0.2, 0.3};
static const double c4_y[] = {0.5, -1.25, 3.0, 0.0, 0.001, -2.5};
static const double c4_loss[] = {0.16000000000000003, 1.1025, 7.290000000000001, 0.010000000000000002, 0.040401000000000006, 7.839999999999999};
static const double c4_g[] = {1.0, -0.5, 2.0, 1.0, 0.3, -1.5};
static const double c4_gx[] = {-0.6000000000000001, -1.1706, -19.2};
static const double c4_gy[] = {0.8, 1.05, 10.8, -0.2, 0.1206, 8.399999999999999};
static const double c5_x[] = {0.4, -0.7};
static const double c5_y[] = {0.1, -0.2, 0.3};
static const double c5_loss[] = {0.09000000000000002, 0.3600000000000001, 0.010000000000000007, 0.6399999999999999, 0.24999999999999994, 1.0};
static const double c5_g[] = {1.0, -0.5, 2.0, 1.0, 0.3, -1.5};
static const double c5_gx[] = {0.40000000000000013, 1.1};
static const double c5_gy[] = {0.9999999999999998, 0.9, -3.4000000000000004};
static const double c6_x[] = {0.5, -1.25, 3.0, 0.0, 0.001, -2.5};
static const double c6_y[] = {0.25, 0.75, -1.0, 0.0, 0.002, -2.5};
static const double c6_loss[] = {0.25, 2.0, 4.0, 0.0, 0.001, 0.0};
static const double c6_g[] = {1.0, -0.5, 2.0, 1.0, 0.3, -1.5};
static const double c6_gx[] = {1.0, 0.5, 2.0, 0.0, -0.3, -0.0};
static const double c6_gy[] = {-1.0, -0.5, -2.0, -0.0, 0.3, 0.0};
static const double c7_x[] = {0.5, -1.25, 3.0, 0.0, 0.001, -2.5};
static const double c7_y[] = {0.25, 0.75, -1.0, 0.0, 0.002, -2.5};
static const double c7_loss[] = {0.25, 2.0, 4.0, 0.0, 0.001, 0.0};
static const double c7_g[] = {1.0};
static const double c7_gx[] = {1.0, -1.0, 1.0, 0.0, -1.0, 0.0};
static const double c7_gy[] = {-1.0, 1.0, -1.0, -0.0, 1.0, -0.0};
static const double c8_x[] = {INFINITY, -INFINITY, NAN, 1.0, INFINITY};
static const double c8_y[] = {1.0, INFINITY, 0.0, NAN, INFINITY};
static const double c8_loss[] = {INFINITY, INFINITY, NAN, NAN, NAN};
static const double c8_g[] = {1.0, 1.0, 1.0, 1.0, 1.0};
static const double c8_gx[] = {1.0, -1.0, 0.0, 0.0, 0.0};
static const double c8_gy[] = {-1.0, 1.0, -0.0, -0.0, -0.0};
static const double c9_x[] = {0.5, -1.25, 3.0, 0.0, 0.001, -2.5};
static const double c9_y[] = {0.5, -1.25, 0.0};
static const double c9_loss[] = {0.0, 0.0, 3.0, 0.5, 1.251, 2.5};
static const double c9_g[] = {1.0, -0.5, 2.0, 1.0, 0.3, -1.5};
static const double c9_gx[] = {0.0, -0.0, 2.0, -1.0, 0.3, 1.5};
static const double c9_gy[] = {1.0, -0.3, -3.5};
static const double c10_x[] = {0.5, -1.25, 3.0, 0.0, 1.5, -2.5, 0.2, 1.0};
static const double c10_y[] = {0.25, 0.75, -1.0, 0.0, 0.5, -1.5, -0.3, 1.0};
static const double c10_loss[] = {0.03125, 1.5, 3.5, 0.0, 0.5, 0.5, 0.125, 0.0};
static const double c10_g[] = {1.0, -0.5, 2.0, 1.0, 0.3, -1.5, 0.7, 2.0};
static const double c10_gx[] = {0.25, 0.5, 2.0, 0.0, 0.3, 1.5, 0.35, 0.0};
static const double c10_gy[] = {-0.25, -0.5, -2.0, 0.0, -0.3, -1.5, -0.35, 0.0};
static const double c11_x[] = {0.5, -1.25, 3.0, 0.0, 1.5, -2.5, 0.2, 1.0};
static const double c11_y[] = {0.25, 0.75, -1.0, 0.0, 0.5, -1.5, -0.3, 1.0};
static const double c11_loss[] = {0.0625, 1.75, 3.75, 0.0, 0.75, 0.75, 0.25, 0.0};
static const double c11_g[] = {0.125};
static const double c11_gx[] = {0.0625, -0.125, 0.125, 0.0, 0.125, -0.125, 0.125, 0.0};
static const double c11_gy[] = {-0.0625, 0.125, -0.125, 0.0, -0.125, 0.125, -0.125, 0.0};
static const double c12_x[] = {0.5, -1.25, 3.0, 0.0, 1.5, -2.5, 0.2, 1.0};
static const double c12_y[] = {0.25, 0.75, -1.0, 0.0, 0.5, -1.5, -0.3, 1.0};
static const double c12_loss[] = {0.25, 2.0, 4.0, 0.0, 1.0, 1.0, 0.5, 0.0};
static const double c12_g[] = {1.0, -0.5, 2.0, 1.0, 0.3, -1.5, 0.7, 2.0};
static const double c12_gx[] = {1.0, 0.5, 2.0, -1.0, 0.3, 1.5, 0.7, -2.0};
static const double c12_gy[] = {-1.0, -0.5, -2.0, -1.0, -0.3, -1.5, -0.7, -2.0};
static const double c13_x[] = {INFINITY, -INFINITY, NAN, 1.0, INFINITY};
static const double c13_y[] = {1.0, INFINITY, 0.0, NAN, INFINITY};
static const double c13_loss[] = {INFINITY, INFINITY, NAN, NAN, NAN};
static const double c13_g[] = {1.0, 1.0, 1.0, 1.0, 1.0};
static const double c13_gx[] = {1.0, -1.0, NAN, NAN, NAN};
static const double c13_gy[] = {-1.0, 1.0, NAN, NAN, NAN};
static const double c14_x[] = {0.1, -0.2};
static const double c14_y[] = {0.5, -1.25, 3.0, 0.0, 1.5, -2.5, 0.2, 1.0};
static const double c14_loss[] = {0.08000000000000002, 0.8500000000000001, 2.4, 0.005000000000000001, 1.2, 1.7999999999999998, 0.08000000000000002, 0.7};
static const double c14_g[] = {1.0, -0.5, 2.0, 1.0, 0.3, -1.5, 0.7, 2.0};
static const double c14_gx[] = {-2.8, -4.08};
static const double c14_gy[] = {0.4, 0.5, 2.0, -0.1, 0.3, 1.5, 0.27999999999999997, 2.0};
static const double c15_x[] = {0.5, -1.25, 3.0, 0.0, 1.5, -2.5, 0.2, 1.0};
static const double c15_y[] = {0.25, 0.75, -1.0, 0.0, 0.5, -1.5, -0.3, 1.0};
static const double c15_loss[] = {0.03125, 1.875, 4.875, 0.0, 0.5, 0.5, 0.125, 0.0};
static const double c15_g[] = {1.0, -0.5, 2.0, 1.0, 0.3, -1.5, 0.7, 2.0};
static const double c15_gx[] = {0.25, 0.75, 3.0, 0.0, 0.3, 1.5, 0.35, 0.0};
static const double c15_gy[] = {-0.25, -0.75, -3.0, 0.0, -0.3, -1.5, -0.35, 0.0};
static const double c16_x[] = {0.5, -1.25, 3.0, 0.0, 1.5, -2.5, 0.2, 1.0};
static const double c16_y[] = {0.25, 0.75, -1.0, 0.0, 0.5, -1.5, -0.3, 1.0};
static const double c16_loss[] = {0.03125, 0.875, 1.875, 0.0, 0.375, 0.375, 0.125, 0.0};
static const double c16_g[] = {1.0};
static const double c16_gx[] = {0.25, -0.5, 0.5, 0.0, 0.5, -0.5, 0.5, 0.0};
static const double c16_gy[] = {-0.25, 0.5, -0.5, 0.0, -0.5, 0.5, -0.5, 0.0};
static const double c17_x[] = {INFINITY, -INFINITY, NAN, 1.0, INFINITY};
static const double c17_y[] = {1.0, INFINITY, 0.0, NAN, INFINITY};
static const double c17_loss[] = {INFINITY, INFINITY, NAN, NAN, NAN};
static const double c17_g[] = {1.0, 1.0, 1.0, 1.0, 1.0};
static const double c17_gx[] = {1.0, -1.0, NAN, NAN, NAN};
static const double c17_gy[] = {-1.0, 1.0, NAN, NAN, NAN};
static const double c18_x[] = {0.5, -1.25, 3.0, 0.0, 1.5, -2.5, 0.2, 1.0};
static const double c18_y[] = {0.3, -0.6, 1.2, 0.0};
static const double c18_loss[] = {0.020000000000000004, 0.21125000000000002, 1.3, 0.0, 0.7, 1.4, 0.5, 0.5};
static const double c18_g[] = {1.0, -0.5, 2.0, 1.0, 0.3, -1.5, 0.7, 2.0};
static const double c18_gx[] = {0.2, 0.325, 2.0, 0.0, 0.3, 1.5, -0.7, 2.0};
static const double c18_gy[] = {-0.5, -1.825, -1.3, -2.0};
static const double c19_x[] = {0.2, 0.9, 0.5, 0.001, 0.999, 0.0, 1.0, 0.0, 1.0, 1e-50, 1e-17};
static const double c19_y[] = {0.0, 1.0, 0.3, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.5, 0.0};
static const double c19_loss[] = {0.2231435513142097, 0.10536051565782628, 0.6931471805599453, 6.907755278982137, 6.907755278982136, 0.0, -0.0, 100.0, 100.0, 50.0, 0.0};
static const double c19_g[] = {1.0, -0.5, 2.0, 1.0, 0.3, -1.5, 0.7, 1.0, 1.0, 1.0, 1.0};
static const double c19_gx[] = {1.2499999999999998, 0.5555555555555556, 1.6, -999.9999999999999, 299.99999999999966, -0.0, 0.0, -1000000003995.8029, 1000000003995.8029, -500000001997.9014, 1.000000003995803e-05};
static const double c19_gy[] = {1.3862943611198906, 1.0986122886681098, 0.0, 6.906754778648553, -2.0720264335945657, -INFINITY, -INFINITY, INFINITY, -INFINITY, 115.12925464970229, 39.14394658089878};
static const double c20_x[] = {0.2, 0.7, 0.5, 0.001};
static const double c20_y[] = {0.0, 1.0, 0.4, 0.9};
static const double c20_loss[] = {0.2231435513142097, 0.35667494393873245, 0.6931471805599453, 6.217079801117282};
static const double c20_g[] = {1.0};
static const double c20_gx[] = {1.2499999999999998, -1.4285714285714286, 0.3999999999999999, -899.8998998998999};
static const double c20_gy[] = {1.3862943611198906, -0.8472978603872034, 0.0, 6.906754778648553};
static const double c21_x[] = {0.2, 0.9, 0.5, 0.001, 0.999, 0.0};
static const double c21_y[] = {0.0, 1.0, 0.3, 1.0, 0.0, 0.0};
static const double c21_w[] = {0.5, 2.0, 1.5, 0.0, 3.0, 1.0};
static const double c21_loss[] = {0.11157177565710485, 0.21072103131565256, 1.0397207708399179, 0.0, 20.723265836946407, 0.0};
static const double c21_g[] = {1.0, -0.5, 2.0, 1.0, 0.3, -1.5};
static const double c21_gx[] = {0.6249999999999999, 1.1111111111111112, 2.4000000000000004, -0.0, 899.999999999999, -0.0};
static const double c21_gy[] = {0.6931471805599453, 2.1972245773362196, 0.0, 0.0, -6.216079300783697, -INFINITY};
static const double c22_x[] = {0.2, 0.9, 0.5, 0.001, 0.999, 0.0};
static const double c22_y[] = {0.0, 1.0, 0.3, 1.0, 0.0, 0.0};
static const double c22_w[] = {0.5, 2.0, 1.5};
static const double c22_loss[] = {0.11157177565710485, 0.21072103131565256, 1.0397207708399179, 3.4538776394910684, 13.815510557964272, 0.0};
static const double c22_g[] = {1.0, -0.5, 2.0, 1.0, 0.3, -1.5};
static const double c22_gx[] = {0.6249999999999999, 1.1111111111111112, 2.4000000000000004, -499.99999999999994, 599.9999999999993, -0.0};
static const double c22_gy[] = {0.6931471805599453, 2.1972245773362196, 0.0, 3.4533773893242765, -4.1440528671891315, -INFINITY};
static const double c23_x[] = {0.2, 0.9, 0.5, 0.001, 0.999, 0.0};
static const double c23_y[] = {0.0, 1.0, 0.3, 1.0, 0.0, 0.0};
static const double c23_w[] = {0.5, 2.0};
static const double c23_loss[] = {0.11157177565710485, 0.05268025782891314, 0.34657359027997264, 13.815510557964274, 13.815510557964272, 0.0};
static const double c23_g[] = {0.16666666666666666};
static const double c23_gx[] = {0.10416666666666664, -0.09259259259259259, 0.06666666666666667, -333.33333333333326, 333.333333333333, 0.0};
static const double c23_gy[] = {0.11552453009332421, -0.1831020481113516, 0.0, 2.302251592882851, -2.3022515928828504, INFINITY};
static const double c24_x[] = {0.0, 1.5, -2.0, 40.0, -40.0, 800.0, -800.0, 3.0, -0.5};
static const double c24_y[] = {0.0, 1.0, 0.3, 0.0, 1.0, 1.0, 0.0, 1.5, -0.5};
static const double c24_loss[] = {0.6931471805599453, 0.20141327798275246, 0.7269280110429727, 40.0, 40.0, 0.0, 0.0, -1.451412648426258, 0.2240769841801067};
static const double c24_g[] = {1.0, -0.5, 2.0, 1.0, 0.3, -1.5, 0.7, 1.0, 2.0};
static const double c24_gx[] = {0.5, 0.09121276190317817, -0.3615941559557649, 1.0, -0.3, -0.0, 0.0, -0.5474258731775666, 1.7550813375962908};
static const double c24_gy[] = {-0.0, 0.75, 4.0, -40.0, 12.0, 1200.0, 560.0, -3.0, 1.0};
static const double c25_x[] = {0.0, 1.5, -2.0, 40.0, -40.0, 800.0, -800.0, 3.0, -0.5};
static const double c25_y[] = {0.0, 1.0, 0.3, 0.0, 1.0, 1.0, 0.0, 1.5, -0.5};
static const double c25_w[] = {0.5, 2.0, 1.5};
static const double c25_loss[] = {0.34657359027997264, 0.40282655596550493, 1.090392016564459, 20.0, 80.0, 0.0, 0.0, -2.902825296852516, 0.33611547627016003};
static const double c25_g[] = {1.0, -0.5, 2.0, 1.0, 0.3, -1.5, 0.7, 1.0, 2.0};
static const double c25_gx[] = {0.25, 0.18242552380635635, -0.5423912339336473, 0.5, -0.6, -0.0, 0.0, -1.0948517463551333, 2.632622006394436};
static const double c25_gy[] = {-0.0, 1.5, 6.0, -20.0, 24.0, 1800.0, 280.0, -6.0, 1.5};
static const double c26_x[] = {0.0, 1.5, -2.0, 40.0, -40.0, 800.0, -800.0, 3.0, -0.5};
static const double c26_y[] = {0.0, 1.0, 0.3, 0.0, 1.0, 1.0, 0.0, 1.5, -0.5};
static const double c26_pw[] = {0.5, 2.0, 3.0};
static const double c26_loss[] = {0.6931471805599453, 0.40282655596550493, 2.0030848176687566, 40.0, 80.0, 0.0, 0.0, -1.378531621065645, -0.75};
static const double c26_g[] = {1.0, -0.5, 2.0, 1.0, 0.3, -1.5, 0.7, 1.0, 2.0};
static const double c26_gx[] = {0.5, 0.18242552380635635, -1.4185506495292237, 1.0, -0.6, -0.0, 0.0, -0.6185646829439166, 3.0};
static const double c26_gy[] = {-0.34657359027997264, 0.6492933610086238, 12.507712044171893, -40.0, 24.0, 1200.0, 280.0, -2.951412648426258, 4.896307936720428};
static const double c27_x[] = {0.0, 1.5, -2.0, 40.0, -40.0, 800.0, -800.0, 3.0, -0.5};
static const double c27_y[] = {0.0, 1.0, 0.3, 0.0, 1.0, 1.0, 0.0, 1.5, -0.5};
static const double c27_w[] = {0.5, 2.0, 1.5};
static const double c27_pw[] = {0.5, 2.0, 3.0};
static const double c27_loss[] = {0.34657359027997264, 0.20141327798275246, 1.0015424088343783, 80.0, 160.0, 0.0, 0.0, -2.0677974315984677, -1.125};
static const double c27_g[] = {1.0, -0.5, 2.0, 1.0, 0.3, -1.5, 0.7, 1.0, 2.0};
static const double c27_gx[] = {0.25, 0.09121276190317817, -0.7092753247646119, 2.0, -1.2, -0.0, 0.0, -0.927847024415875, 4.5};
static const double c27_gy[] = {-0.17328679513998632, 0.3246466805043119, 6.253856022085946, -80.0, 48.0, 2400.0, 420.0, -4.427118972639387, 7.3444619050806415};
static const double c28_x[] = {0.0, 1.5, -2.0, 40.0, -40.0, 800.0, -800.0, 3.0, -0.5};
static const double c28_y[] = {0.0, 1.0, 0.3, 0.0, 1.0, 1.0, 0.0, 1.5, -0.5};
static const double c28_w[] = {0.5, 2.0, 1.5, 1.0, 0.1, 0.0, 2.0, 3.0, 1.0};
static const double c28_pw[] = {0.5, 2.0, 3.0, 1.0, 1.0, 4.0, 0.25, 1.0, 2.0};
static const double c28_loss[] = {0.34657359027997264, 0.8056531119310099, 3.0046272265031346, 40.0, 4.0, 0.0, 0.0, -4.354237945278774, -0.26296150790994666};
static const double c28_g[] = {0.1111111111111111};
static const double c28_gx[] = {0.027777777777777776, -0.08107801058060282, -0.1182125541274353, 0.1111111111111111, -0.011111111111111112, 0.0, 0.0, -0.18247529105918886, 0.1320855927110081};
static const double c28_gy[] = {-0.01925408834888737, -0.28857482711494387, 1.0423093370143244, -4.444444444444445, 0.4444444444444445, -0.0, 44.44444444444444, -1.0, 0.1637863315755674};
static const double c29_x[] = {INFINITY, -INFINITY, NAN, 1.0, INFINITY, -INFINITY};
static const double c29_y[] = {0.5, 0.5, 0.0, NAN, 1.0, 0.0};
static const double c29_loss[] = {INFINITY, NAN, NAN, NAN, NAN, NAN};
static const double c29_g[] = {1.0, 1.0, 1.0, 1.0, 1.0, 1.0};
static const double c29_gx[] = {0.5, -0.5, NAN, NAN, 0.0, 0.0};
static const double c29_gy[] = {-INFINITY, INFINITY, NAN, -1.0, -INFINITY, INFINITY};
static const double c30_x[] = {INFINITY, -INFINITY, NAN, 1.0, INFINITY, -INFINITY};
static const double c30_y[] = {0.5, 0.5, 0.0, NAN, 1.0, 0.0};
static const double c30_pw[] = {2.0};
static const double c30_loss[] = {INFINITY, NAN, NAN, NAN, NAN, NAN};
static const double c30_g[] = {1.0, 1.0, 1.0, 1.0, 1.0, 1.0};
static const double c30_gx[] = {0.5, -1.0, NAN, NAN, 0.0, 0.0};
static const double c30_gy[] = {-INFINITY, INFINITY, NAN, -0.6867383124817771, -INFINITY, INFINITY};
static const double c31_x[] = {-0.5, -1.2, -2.0, -0.1, -3.0, 0.4, -INFINITY, -0.7};
static const double c31_y[] = {0.3, 0.0, 0.5, 0.2, -0.1, 1.5, 0.0, 0.1};
static const double c31_loss[] = {-0.21119184129778082, 0.0, 0.6534264097200273, -0.30188758248682007, NAN, 0.008197662162246488, NAN, -0.16025850929940455};
static const double c31_g[] = {1.0, -0.5, 2.0, 1.0, 0.3, -1.5, 0.7, 0.0};
static const double c31_gx[] = {-0.3, 0.0, -1.0, -0.2, 0.03, 2.25, -0.0, -0.0};
static const double c31_gy[] = {0.2960271956740639, NAN, 4.613705638880109, -0.5094379124341003, NAN, -1.5081976621622464, NAN, 0.0};
static const double c32_x[] = {-0.5, -1.2, 0.3, -0.4};
static const double c32_y[] = {0.0, -0.2, 0.4, NAN};
static const double c32_loss[] = {0.0, NAN, -0.486516292749662, NAN};
static const double c32_g[] = {0.0, 0.0, 0.0, 0.0};
static const double c32_gx[] = {-0.0, 0.0, -0.0, NAN};
static const double c32_gy[] = {NAN, 0.0, 0.0, NAN};
static const double c33_x[] = {-0.5, -1.2, -2.0, -0.1, -3.0, 0.4};
static const double c33_y[] = {0.3, 0.0, 0.5, 0.2, -0.1, 1.5};
static const double c33_loss[] = {-0.21119184129778082, 0.0, 0.6534264097200273, -0.30188758248682007, NAN, 0.008197662162246488};
static const double c33_g[] = {1.0};
static const double c33_gx[] = {-0.3, -0.0, -0.5, -0.2, 0.1, -1.5};
static const double c33_gy[] = {0.2960271956740639, NAN, 2.3068528194400546, -0.5094379124341003, NAN, 1.0054651081081643};
static const double c34_x[] = {-0.5, -1.2, -2.0, -0.1, -3.0, 0.4};
static const double c34_y[] = {0.2, 0.5, 0.3};
static const double c34_loss[] = {-0.22188758248682008, 0.25342640972002733, 0.23880815870221916, -0.30188758248682007, 1.1534264097200273, -0.4811918412977808};
static const double c34_g[] = {1.0, -0.5, 2.0, 1.0, 0.3, -1.5};
static const double c34_gx[] = {-0.2, 0.25, -0.6, -0.2, -0.15, 0.44999999999999996};
static const double c34_gy[] = {-0.6188758248682006, 0.23862943611198897, 4.498013597837032};
static const double c35_x[] = {-0.5, -1.2, -2.0, -0.1, -3.0, 0.4, -INFINITY, -0.7};
static const double c35_y[] = {-1.2, 0.0, -0.7, -3.0, 0.5, -INFINITY, INFINITY, -0.1};
static const double c35_loss[] = {-0.2108359483385415, 1.2, 0.6455608949288324, -0.14438249826680544, 5.770524447450448, NAN, INFINITY, 0.5429024508215757};
static const double c35_g[] = {1.0, -0.5, 2.0, 1.0, 0.3, -1.5, 0.7, 0.0};
static const double c35_gx[] = {-0.30119421191220214, 0.5, -0.993170607582819, -0.049787068367863944, -0.4946163812100384, 0.0, -INFINITY, -0.0};
static const double c35_gy[] = {0.09035826357366064, -1.1, 2.284292397440484, -0.09459542989894149, 2.225773715445173, NAN, INFINITY, 0.0};
static const double c36_x[] = {-0.5, -1.0, -2.0};
static const double c36_y[] = {-1.2, 0.0, -0.7, -3.0, 0.5, -0.2};
static const double c36_loss[] = {-0.2108359483385415, 1.0, 0.6455608949288324, -0.12446767091965986, 2.4730819060501923, 1.4737153555403673};
static const double c36_g[] = {1.0, -0.5, 2.0, 1.0, 0.3, -1.5};
static const double c36_gx[] = {-0.3509812802800661, 0.005383618789961575, 0.23492552203415373};
static const double c36_gy[] = {0.09035826357366064, -1.0, 2.284292397440484, -0.07468060255179593, 1.2365409530250961, -3.438669162927524};

static const struct ref_case ref_cases[] = {
    {"mse", LOSS_PW_MSE, 0.0, {1, {6}}, {1, {6}}, {0, {0}}, {0, {0}}, c0_x, c0_y, NULL, NULL, c0_g, 1, c0_loss, c0_gx, c0_gy, 0},
    {"mse mean", LOSS_PW_MSE, 0.0, {2, {2, 3}}, {2, {2, 3}}, {0, {0}}, {0, {0}}, c1_x, c1_y, NULL, NULL, c1_g, 0, c1_loss, c1_gx, c1_gy, 0},
    {"mse nonfinite", LOSS_PW_MSE, 0.0, {1, {5}}, {1, {5}}, {0, {0}}, {0, {0}}, c2_x, c2_y, NULL, NULL, c2_g, 1, c2_loss, c2_gx, c2_gy, 0},
    {"mse target over input", LOSS_PW_MSE, 0.0, {2, {2, 3}}, {1, {3}}, {0, {0}}, {0, {0}}, c3_x, c3_y, NULL, NULL, c3_g, 1, c3_loss, c3_gx, c3_gy, 0},
    {"mse input over target", LOSS_PW_MSE, 0.0, {1, {3}}, {2, {2, 3}}, {0, {0}}, {0, {0}}, c4_x, c4_y, NULL, NULL, c4_g, 1, c4_loss, c4_gx, c4_gy, 0},
    {"mse both broadcast", LOSS_PW_MSE, 0.0, {2, {2, 1}}, {1, {3}}, {0, {0}}, {0, {0}}, c5_x, c5_y, NULL, NULL, c5_g, 1, c5_loss, c5_gx, c5_gy, 0},
    {"l1", LOSS_PW_L1, 0.0, {1, {6}}, {1, {6}}, {0, {0}}, {0, {0}}, c6_x, c6_y, NULL, NULL, c6_g, 1, c6_loss, c6_gx, c6_gy, 0},
    {"l1 sum", LOSS_PW_L1, 0.0, {2, {3, 2}}, {2, {3, 2}}, {0, {0}}, {0, {0}}, c7_x, c7_y, NULL, NULL, c7_g, 0, c7_loss, c7_gx, c7_gy, 0},
    {"l1 nonfinite", LOSS_PW_L1, 0.0, {1, {5}}, {1, {5}}, {0, {0}}, {0, {0}}, c8_x, c8_y, NULL, NULL, c8_g, 1, c8_loss, c8_gx, c8_gy, 0},
    {"l1 target over input", LOSS_PW_L1, 0.0, {2, {2, 3}}, {2, {1, 3}}, {0, {0}}, {0, {0}}, c9_x, c9_y, NULL, NULL, c9_g, 1, c9_loss, c9_gx, c9_gy, 0},
    {"smooth_l1 beta 1", LOSS_PW_SMOOTH_L1, 1.0, {1, {8}}, {1, {8}}, {0, {0}}, {0, {0}}, c10_x, c10_y, NULL, NULL, c10_g, 1, c10_loss, c10_gx, c10_gy, 0},
    {"smooth_l1 beta 0.5 mean", LOSS_PW_SMOOTH_L1, 0.5, {2, {2, 4}}, {2, {2, 4}}, {0, {0}}, {0, {0}}, c11_x, c11_y, NULL, NULL, c11_g, 0, c11_loss, c11_gx, c11_gy, 0},
    {"smooth_l1 beta 0", LOSS_PW_SMOOTH_L1, 0.0, {1, {8}}, {1, {8}}, {0, {0}}, {0, {0}}, c12_x, c12_y, NULL, NULL, c12_g, 1, c12_loss, c12_gx, c12_gy, 0},
    {"smooth_l1 nonfinite", LOSS_PW_SMOOTH_L1, 1.0, {1, {5}}, {1, {5}}, {0, {0}}, {0, {0}}, c13_x, c13_y, NULL, NULL, c13_g, 1, c13_loss, c13_gx, c13_gy, 0},
    {"smooth_l1 input over target", LOSS_PW_SMOOTH_L1, 1.0, {2, {2, 1}}, {2, {2, 4}}, {0, {0}}, {0, {0}}, c14_x, c14_y, NULL, NULL, c14_g, 1, c14_loss, c14_gx, c14_gy, 0},
    {"huber delta 1.5", LOSS_PW_HUBER, 1.5, {1, {8}}, {1, {8}}, {0, {0}}, {0, {0}}, c15_x, c15_y, NULL, NULL, c15_g, 1, c15_loss, c15_gx, c15_gy, 0},
    {"huber delta 0.5 sum", LOSS_PW_HUBER, 0.5, {2, {4, 2}}, {2, {4, 2}}, {0, {0}}, {0, {0}}, c16_x, c16_y, NULL, NULL, c16_g, 0, c16_loss, c16_gx, c16_gy, 0},
    {"huber nonfinite", LOSS_PW_HUBER, 1.0, {1, {5}}, {1, {5}}, {0, {0}}, {0, {0}}, c17_x, c17_y, NULL, NULL, c17_g, 1, c17_loss, c17_gx, c17_gy, 0},
    {"huber target over input", LOSS_PW_HUBER, 1.0, {2, {2, 4}}, {1, {4}}, {0, {0}}, {0, {0}}, c18_x, c18_y, NULL, NULL, c18_g, 1, c18_loss, c18_gx, c18_gy, 0},
    {"bce", LOSS_PW_BCE, 0.0, {1, {11}}, {1, {11}}, {0, {0}}, {0, {0}}, c19_x, c19_y, NULL, NULL, c19_g, 1, c19_loss, c19_gx, c19_gy, 1},
    {"bce interior sum", LOSS_PW_BCE, 0.0, {1, {4}}, {1, {4}}, {0, {0}}, {0, {0}}, c20_x, c20_y, NULL, NULL, c20_g, 0, c20_loss, c20_gx, c20_gy, 0},
    {"bce weight", LOSS_PW_BCE, 0.0, {2, {2, 3}}, {2, {2, 3}}, {2, {2, 3}}, {0, {0}}, c21_x, c21_y, c21_w, NULL, c21_g, 1, c21_loss, c21_gx, c21_gy, 0},
    {"bce weight broadcast", LOSS_PW_BCE, 0.0, {2, {2, 3}}, {2, {2, 3}}, {1, {3}}, {0, {0}}, c22_x, c22_y, c22_w, NULL, c22_g, 1, c22_loss, c22_gx, c22_gy, 0},
    {"bce weight column mean", LOSS_PW_BCE, 0.0, {2, {2, 3}}, {2, {2, 3}}, {2, {2, 1}}, {0, {0}}, c23_x, c23_y, c23_w, NULL, c23_g, 0, c23_loss, c23_gx, c23_gy, 0},
    {"bce_logits", LOSS_PW_BCE_LOGITS, 0.0, {1, {9}}, {1, {9}}, {0, {0}}, {0, {0}}, c24_x, c24_y, NULL, NULL, c24_g, 1, c24_loss, c24_gx, c24_gy, 0},
    {"bce_logits weight", LOSS_PW_BCE_LOGITS, 0.0, {2, {3, 3}}, {2, {3, 3}}, {1, {3}}, {0, {0}}, c25_x, c25_y, c25_w, NULL, c25_g, 1, c25_loss, c25_gx, c25_gy, 0},
    {"bce_logits pos_weight", LOSS_PW_BCE_LOGITS, 0.0, {2, {3, 3}}, {2, {3, 3}}, {0, {0}}, {1, {3}}, c26_x, c26_y, NULL, c26_pw, c26_g, 1, c26_loss, c26_gx, c26_gy, 0},
    {"bce_logits both weights", LOSS_PW_BCE_LOGITS, 0.0, {2, {3, 3}}, {2, {3, 3}}, {2, {3, 1}}, {1, {3}}, c27_x, c27_y, c27_w, c27_pw, c27_g, 1, c27_loss, c27_gx, c27_gy, 0},
    {"bce_logits full weights mean", LOSS_PW_BCE_LOGITS, 0.0, {2, {3, 3}}, {2, {3, 3}}, {2, {3, 3}}, {2, {3, 3}}, c28_x, c28_y, c28_w, c28_pw, c28_g, 0, c28_loss, c28_gx, c28_gy, 0},
    {"bce_logits nonfinite", LOSS_PW_BCE_LOGITS, 0.0, {1, {6}}, {1, {6}}, {0, {0}}, {0, {0}}, c29_x, c29_y, NULL, NULL, c29_g, 1, c29_loss, c29_gx, c29_gy, 0},
    {"bce_logits nonfinite pos_weight", LOSS_PW_BCE_LOGITS, 0.0, {1, {6}}, {1, {6}}, {0, {0}}, {1, {1}}, c30_x, c30_y, NULL, c30_pw, c30_g, 1, c30_loss, c30_gx, c30_gy, 0},
    {"kl_div", LOSS_PW_KL_DIV, 0.0, {1, {8}}, {1, {8}}, {0, {0}}, {0, {0}}, c31_x, c31_y, NULL, NULL, c31_g, 1, c31_loss, c31_gx, c31_gy, 0},
    {"kl_div g zero", LOSS_PW_KL_DIV, 0.0, {1, {4}}, {1, {4}}, {0, {0}}, {0, {0}}, c32_x, c32_y, NULL, NULL, c32_g, 1, c32_loss, c32_gx, c32_gy, 0},
    {"kl_div sum", LOSS_PW_KL_DIV, 0.0, {2, {2, 3}}, {2, {2, 3}}, {0, {0}}, {0, {0}}, c33_x, c33_y, NULL, NULL, c33_g, 0, c33_loss, c33_gx, c33_gy, 0},
    {"kl_div target over input", LOSS_PW_KL_DIV, 0.0, {2, {2, 3}}, {1, {3}}, {0, {0}}, {0, {0}}, c34_x, c34_y, NULL, NULL, c34_g, 1, c34_loss, c34_gx, c34_gy, 0},
    {"kl_div log_target", LOSS_PW_KL_DIV, 1.0, {1, {8}}, {1, {8}}, {0, {0}}, {0, {0}}, c35_x, c35_y, NULL, NULL, c35_g, 1, c35_loss, c35_gx, c35_gy, 0},
    {"kl_div log_target input over target", LOSS_PW_KL_DIV, 1.0, {1, {3}}, {2, {2, 3}}, {0, {0}}, {0, {0}}, c36_x, c36_y, NULL, NULL, c36_g, 1, c36_loss, c36_gx, c36_gy, 0},
};
/* clang-format on */

static size_t shape_numel(const struct shape *s)
{
    size_t n = 1;

    for (size_t i = 0; i < s->ndim; i++)
        n *= s->dim[i];
    return n;
}

/* The broadcasts of one call; args points into it, so it must not move. */
struct setup {
    struct tensor_bcast bc, wbc, pbc;
    struct loss_pointwise_args args;
    size_t nx, ny; /* elements of input and target */
};

static void setup_init(struct setup *s, enum loss_pointwise_kind kind,
                       double param, const struct shape *xs, const double *x,
                       const struct shape *ys, const double *y,
                       const struct shape *ws, const double *w,
                       const struct shape *pws, const double *pw)
{
    memset(s, 0, sizeof(*s));
    ck_assert(
        tensor_broadcast(xs->dim, xs->ndim, ys->dim, ys->ndim, &s->bc, NULL));
    s->args.kind = kind;
    s->args.param = param;
    s->args.input = x;
    s->args.target = y;
    s->args.bc = &s->bc;
    if (w != NULL) {
        ck_assert(
            tensor_expand(ws->dim, ws->ndim, s->bc.shape, s->bc.ndim, &s->wbc));
        s->args.weight = w;
        s->args.weight_bc = &s->wbc;
    }
    if (pw != NULL) {
        ck_assert(tensor_expand(pws->dim, pws->ndim, s->bc.shape, s->bc.ndim,
                                &s->pbc));
        s->args.pos_weight = pw;
        s->args.pos_weight_bc = &s->pbc;
    }
    s->nx = shape_numel(xs);
    s->ny = shape_numel(ys);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    ck_assert_ptr_nonnull(p);
    return p;
}

static double *fill(size_t n, double v)
{
    double *p = xmalloc(n * sizeof(*p));

    for (size_t i = 0; i < n; i++)
        p[i] = v;
    return p;
}

/* Compares n values with agree(); names each mismatch. Returns the count. */
static int check_values(const char *name, const char *what, const double *got,
                        const double *want, size_t n)
{
    int bad = 0;

    for (size_t i = 0; i < n; i++) {
        if (agree(got[i], want[i]))
            continue;
        fprintf(stderr, "# %s: %s[%zu] = %.17g, want %.17g\n", name, what, i,
                got[i], want[i]);
        bad++;
    }
    return bad;
}

/*
 * Runs backward with the requested gradients (the other pointer NULL, or
 * both) and compares them; scratch is sized by loss_pointwise_scratch().
 */
static int check_backward(const char *name, const struct setup *s,
                          const double *g, size_t gstride, const double *gx,
                          const double *gy, bool want_x, bool want_y,
                          const struct loss_exec *ex)
{
    size_t ns = loss_pointwise_scratch(&s->args, want_x, want_y);
    double *scratch = fill(ns, NAN);
    double *ox = want_x ? fill(s->nx, 12345.0) : NULL;
    double *oy = want_y ? fill(s->ny, 12345.0) : NULL;
    char what[64];
    int bad = 0;

    loss_pointwise_backward(&s->args, g, gstride, ox, oy, ns ? scratch : NULL,
                            ex);
    snprintf(what, sizeof(what), "grad_input (want x %d y %d)", want_x, want_y);
    if (want_x)
        bad += check_values(name, what, ox, gx, s->nx);
    snprintf(what, sizeof(what), "grad_target (want x %d y %d)", want_x,
             want_y);
    if (want_y)
        bad += check_values(name, what, oy, gy, s->ny);
    free(scratch);
    free(ox);
    free(oy);
    return bad;
}

START_TEST(test_reference_values)
{
    int bad = 0;

    for (size_t c = 0; c < sizeof(ref_cases) / sizeof(ref_cases[0]); c++) {
        const struct ref_case *r = &ref_cases[c];
        struct setup s;
        double *out;
        unsigned warn;

        setup_init(&s, r->kind, r->param, &r->xs, r->x, &r->ys, r->y, &r->ws,
                   r->w, &r->pws, r->pw);
        out = fill(s.bc.numel, 12345.0);
        warn = loss_pointwise_forward(&s.args, out, NULL);
        bad += check_values(r->name, "loss", out, r->loss, s.bc.numel);
        if (warn != (r->warn ? LOSS_WARN_BCE_LOG_CLAMP : 0u)) {
            fprintf(stderr, "# %s: warnings %u, want %u\n", r->name, warn,
                    r->warn);
            bad++;
        }
        bad += check_backward(r->name, &s, r->g, r->gstride, r->gx, r->gy, true,
                              true, NULL);
        bad += check_backward(r->name, &s, r->g, r->gstride, r->gx, r->gy, true,
                              false, NULL);
        bad += check_backward(r->name, &s, r->g, r->gstride, r->gx, r->gy,
                              false, true, NULL);
        free(out);
    }
    ck_assert_msg(bad == 0, "%d reference mismatches (see log)", bad);
}
END_TEST

/* One element: loss, warnings and both gradients for upstream g. */
struct one {
    double loss, gx, gy;
    unsigned warn;
};

static struct one eval_one(enum loss_pointwise_kind kind, double param,
                           double x, double y, double g)
{
    struct shape s1 = {1, {1}};
    struct setup s;
    struct one r;

    setup_init(&s, kind, param, &s1, &x, &s1, &y, NULL, NULL, NULL, NULL);
    r.warn = loss_pointwise_forward(&s.args, &r.loss, NULL);
    loss_pointwise_backward(&s.args, &g, 0, &r.gx, &r.gy, NULL, NULL);
    return r;
}

/*
 * Exact where the quirk lives (zeros with their sign, infinities, NaN),
 * agree() elsewhere (values that come out of libm).
 */
static bool match(double got, double want)
{
    if (isnan(want) || isnan(got))
        return isnan(want) && isnan(got);
    if (want == 0.0 || isinf(want))
        return got == want && signbit(got) == signbit(want);
    return agree(got, want);
}

struct quirk {
    const char *name;
    enum loss_pointwise_kind kind;
    double param, x, y, g;
    double loss, gx, gy; /* exact, sign of zero included */
    unsigned warn;
};

/*
 * The quirks of 1.13 on single elements, as PyTorch 1.13.1 returns them
 * (worked out from its kernels; the reference table has most of these
 * points too, from torch itself, but agree() cannot see the sign of a zero).
 */
static const struct quirk quirks[] = {
    /* sign(0) = 0, and the target's gradient is -(g * 0) = -0.0. */
    {"l1 d=0", LOSS_PW_L1, 0, 1.5, 1.5, 2.0, 0.0, 0.0, -0.0, 0},
    {"l1 d=NaN", LOSS_PW_L1, 0, NAN, 1.0, 1.0, NAN, 0.0, -0.0, 0},
    {"l1 d=+inf", LOSS_PW_L1, 0, INFINITY, 1.0, 2.0, INFINITY, 2.0, -2.0, 0},
    {"l1 d=-inf", LOSS_PW_L1, 0, 1.0, INFINITY, 2.0, INFINITY, -2.0, 2.0, 0},
    /* beta = 0, d = 0: both gradients are -g (d <= -beta is tested first). */
    {"smooth_l1 beta=0 d=0", LOSS_PW_SMOOTH_L1, 0.0, 0.25, 0.25, 3.0, 0.0, -3.0,
     -3.0, 0},
    {"smooth_l1 beta=0 d>0", LOSS_PW_SMOOTH_L1, 0.0, 2.0, 0.5, 3.0, 1.5, 3.0,
     -3.0, 0},
    {"smooth_l1 beta=1 d=beta", LOSS_PW_SMOOTH_L1, 1.0, 1.5, 0.5, 3.0, 0.5, 3.0,
     -3.0, 0},
    {"smooth_l1 beta=1 d=-beta", LOSS_PW_SMOOTH_L1, 1.0, 0.5, 1.5, 3.0, 0.5,
     -3.0, 3.0, 0},
    {"smooth_l1 beta=1 d=0", LOSS_PW_SMOOTH_L1, 1.0, 0.5, 0.5, 3.0, 0.0, 0.0,
     0.0, 0},
    {"huber delta=2 d=delta", LOSS_PW_HUBER, 2.0, 2.5, 0.5, 3.0, 2.0, 6.0, -6.0,
     0},
    {"huber delta=2 d=-3", LOSS_PW_HUBER, 2.0, 0.5, 3.5, 3.0, 4.0, -6.0, 6.0,
     0},
    {"huber delta=2 d=1", LOSS_PW_HUBER, 2.0, 1.5, 0.5, 3.0, 0.5, 3.0, -3.0, 0},
    /* log clamped at -100; input gradient through EPS; target unclamped. */
    {"bce p=0 y=1", LOSS_PW_BCE, 0, 0.0, 1.0, 1.0, 100.0, -1.0 / BCE_EPS,
     INFINITY, 1},
    {"bce p=1 y=0", LOSS_PW_BCE, 0, 1.0, 0.0, 1.0, 100.0, 1.0 / BCE_EPS,
     -INFINITY, 1},
    {"bce p=0 y=0", LOSS_PW_BCE, 0, 0.0, 0.0, 1.0, 0.0, 0.0, INFINITY, 0},
    {"bce p=1 y=1", LOSS_PW_BCE, 0, 1.0, 1.0, 1.0, -0.0, 0.0, -INFINITY, 0},
    {"bce p=0 y=1", LOSS_PW_BCE, 0, 0.0, 1.0, 1.0, 100.0,
     -1.0 / 9.999999960041972e-13, INFINITY, 1},
    {"bce p=1 y=0", LOSS_PW_BCE, 0, 1.0, 0.0, 1.0, 100.0,
     1.0 / 9.999999960041972e-13, -INFINITY, 1},
    /* log(1 - 1e-17) is log(1) = 0 exactly (1.13 has no log1p). */
    {"bce p=1e-17 y=0", LOSS_PW_BCE, 0, 1e-17, 0.0, 1.0, 0.0, 1e-17 / BCE_EPS,
     39.14394658089878, 0},
    {"bce p=1e-50 y=0.5", LOSS_PW_BCE, 0, 1e-50, 0.5, 1.0, 50.0, -0.5 / BCE_EPS,
     115.12925464970229, 1},
    {"bce p=0.5 y=0.5", LOSS_PW_BCE, 0, 0.5, 0.5, 1.0, 0.6931471805599453, 0.0,
     -0.0, 0},
    /* The stable form does not overflow; its x = -inf is NaN. */
    {"bce_logits x=-800 y=0", LOSS_PW_BCE_LOGITS, 0, -800.0, 0.0, 1.0, 0.0, 0.0,
     800.0, 0},
    {"bce_logits x=800 y=0", LOSS_PW_BCE_LOGITS, 0, 800.0, 0.0, 1.0, 800.0, 1.0,
     -800.0, 0},
    {"bce_logits x=-inf", LOSS_PW_BCE_LOGITS, 0, -INFINITY, 0.0, 1.0, NAN, 0.0,
     INFINITY, 0},
    /* xlogy: 0 at y = 0 (NaN target gradient), NaN for y < 0. */
    {"kl_div y=0", LOSS_PW_KL_DIV, 0, -0.5, 0.0, 2.0, 0.0, -0.0, NAN, 0},
    {"kl_div y=0 x=-inf", LOSS_PW_KL_DIV, 0, -INFINITY, 0.0, 2.0, NAN, -0.0,
     NAN, 0},
    {"kl_div y<0", LOSS_PW_KL_DIV, 0, -0.5, -0.25, 2.0, NAN, 0.5, NAN, 0},
    {"kl_div y<0 g=0", LOSS_PW_KL_DIV, 0, -0.5, -0.25, 0.0, NAN, 0.0, 0.0, 0},
    {"kl_div y=NaN", LOSS_PW_KL_DIV, 0, -0.5, NAN, 1.0, NAN, NAN, NAN, 0},
    {"kl_div log_target y=-inf", LOSS_PW_KL_DIV, 1, -0.5, -INFINITY, 1.0, NAN,
     -0.0, NAN, 0},
};

START_TEST(test_quirks)
{
    int bad = 0;

    for (size_t c = 0; c < sizeof(quirks) / sizeof(quirks[0]); c++) {
        const struct quirk *q = &quirks[c];
        struct one r = eval_one(q->kind, q->param, q->x, q->y, q->g);

        if (!match(r.loss, q->loss) || !match(r.gx, q->gx) ||
            !match(r.gy, q->gy) || r.warn != q->warn) {
            fprintf(stderr,
                    "# %s: loss %.17g gx %.17g gy %.17g warn %u; want %.17g "
                    "%.17g %.17g %u\n",
                    q->name, r.loss, r.gx, r.gy, r.warn, q->loss, q->gx, q->gy,
                    q->warn);
            bad++;
        }
    }
    ck_assert_msg(bad == 0, "%d quirk mismatches (see log)", bad);
}
END_TEST

START_TEST(test_empty)
{
    static const struct {
        const char *name;
        enum loss_pointwise_kind kind;
        struct shape xs, ys, ws, pws;
        bool w, pw;
    } cases[] = {
        {"mse [0] [0]", LOSS_PW_MSE, {1, {0}}, {1, {0}}, {0}, {0}, 0, 0},
        {"l1 [0,3] [3]", LOSS_PW_L1, {2, {0, 3}}, {1, {3}}, {0}, {0}, 0, 0},
        {"huber [3] [0,3]",
         LOSS_PW_HUBER,
         {1, {3}},
         {2, {0, 3}},
         {0},
         {0},
         0,
         0},
        {"smooth_l1 [2,1] [2,0]",
         LOSS_PW_SMOOTH_L1,
         {2, {2, 1}},
         {2, {2, 0}},
         {0},
         {0},
         0,
         0},
        {"bce [0,3] weight [3]",
         LOSS_PW_BCE,
         {2, {0, 3}},
         {2, {0, 3}},
         {1, {3}},
         {0},
         1,
         0},
        {"bce_logits [0,3] pos_weight [3]",
         LOSS_PW_BCE_LOGITS,
         {2, {0, 3}},
         {2, {0, 3}},
         {1, {1}},
         {1, {3}},
         1,
         1},
        {"kl_div [4,0] [0]",
         LOSS_PW_KL_DIV,
         {2, {4, 0}},
         {1, {0}},
         {0},
         {0},
         0,
         0},
    };
    static const double ones[3] = {1.0, 1.0, 1.0};
    static const double g = 1.0;
    int bad = 0;

    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        struct setup s;
        double gx[3] = {7.0, 7.0, 7.0}, gy[3] = {7.0, 7.0, 7.0};
        double out = 7.0;
        size_t ns;

        setup_init(&s, cases[c].kind, 1.0, &cases[c].xs, ones, &cases[c].ys,
                   ones, &cases[c].ws, cases[c].w ? ones : NULL, &cases[c].pws,
                   cases[c].pw ? ones : NULL);
        ck_assert_uint_eq(s.bc.numel, 0);
        ns = loss_pointwise_scratch(&s.args, true, true);
        if (ns != 0 || loss_pointwise_forward(&s.args, &out, NULL) != 0 ||
            out != 7.0) {
            fprintf(stderr, "# %s: scratch %zu, forward wrote %g\n",
                    cases[c].name, ns, out);
            bad++;
        }
        /* A broadcast operand gets zeros; nothing else is written. */
        loss_pointwise_backward(&s.args, &g, 0, gx, gy, NULL, NULL);
        for (size_t i = 0; i < 3; i++) {
            double wx = i < s.nx ? 0.0 : 7.0, wy = i < s.ny ? 0.0 : 7.0;

            if (gx[i] != wx || gy[i] != wy) {
                fprintf(stderr, "# %s: grads [%zu] = %g %g, want %g %g\n",
                        cases[c].name, i, gx[i], gy[i], wx, wy);
                bad++;
            }
        }
    }
    ck_assert_msg(bad == 0, "%d empty-tensor failures (see log)", bad);
}
END_TEST

START_TEST(test_scratch_sizes)
{
    static const struct {
        const char *name;
        struct shape xs, ys;
        size_t both, x_only, y_only;
    } cases[] = {
        {"same shape", {2, {2, 3}}, {2, {2, 3}}, 0, 0, 0},
        /* Same elements in the same order: no summing back. */
        {"leading 1", {1, {3}}, {2, {1, 3}}, 0, 0, 0},
        {"target broadcast", {2, {2, 3}}, {1, {3}}, 6, 0, 6},
        {"input broadcast", {2, {1, 3}}, {3, {4, 2, 3}}, 24, 24, 0},
        {"both broadcast", {2, {2, 1}}, {1, {3}}, 6, 6, 6},
        {"size-1 dims", {2, {1, 1}}, {2, {1, 1}}, 0, 0, 0},
    };
    static const double v[24] = {0};
    int bad = 0;

    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        struct setup s;
        size_t both, xo, yo, none;

        setup_init(&s, LOSS_PW_MSE, 0.0, &cases[c].xs, v, &cases[c].ys, v, NULL,
                   NULL, NULL, NULL);
        both = loss_pointwise_scratch(&s.args, true, true);
        xo = loss_pointwise_scratch(&s.args, true, false);
        yo = loss_pointwise_scratch(&s.args, false, true);
        none = loss_pointwise_scratch(&s.args, false, false);
        if (both != cases[c].both || xo != cases[c].x_only ||
            yo != cases[c].y_only || none != 0) {
            fprintf(stderr, "# %s: scratch %zu %zu %zu %zu\n", cases[c].name,
                    both, xo, yo, none);
            bad++;
        }
    }
    ck_assert_msg(bad == 0, "%d scratch-size failures (see log)", bad);
}
END_TEST

/* A configuration for the finite-difference and bit-identity tests. */
struct config {
    const char *name;
    enum loss_pointwise_kind kind;
    double param;
    struct shape xs, ys, ws, pws;
    bool w, pw;
    size_t gstride;
};

/* Buffers for one configuration, filled from the generator. */
struct problem {
    const struct config *cfg;
    struct setup s;
    double *x, *y, *w, *pw, *g, *out;
    size_t nw, npw, ng;
};

/* Points away from kinks by more than FD_MARGIN (FD_STEP is 1e-6). */
#define FD_MARGIN 1e-3

static bool away_from_kinks(const struct problem *p)
{
    const struct tensor_bcast *bc = &p->s.bc;
    struct tensor_iter it;
    enum loss_pointwise_kind k = p->cfg->kind;
    double beta = p->cfg->param;

    if (k != LOSS_PW_L1 && k != LOSS_PW_SMOOTH_L1 && k != LOSS_PW_HUBER)
        return true;
    tensor_iter_init(&it, bc, 0);
    for (size_t i = 0; i < bc->numel; i++) {
        double d = fabs(p->x[it.a] - p->y[it.b]);

        if (d < FD_MARGIN || (k != LOSS_PW_L1 && fabs(d - beta) < FD_MARGIN))
            return false;
        tensor_iter_next(&it);
    }
    return true;
}

/*
 * Draws a point for the loss: BCE probabilities in [0.05, 0.95] (off the
 * clamp and the EPS floor), kl_div probability targets in [0.05, 1], other
 * values normal; redrawn until l1/smooth_l1/huber are off their kinks.
 */
static void problem_draw(struct problem *p, struct test_rng *rng)
{
    enum loss_pointwise_kind k = p->cfg->kind;

    do {
        for (size_t i = 0; i < p->s.nx; i++)
            p->x[i] = k == LOSS_PW_BCE ? 0.05 + 0.9 * test_rng_uniform(rng)
                      : k == LOSS_PW_BCE_LOGITS ? 3.0 * test_rng_normal(rng)
                                                : test_rng_normal(rng);
        for (size_t i = 0; i < p->s.ny; i++)
            p->y[i] = k == LOSS_PW_BCE || k == LOSS_PW_BCE_LOGITS
                          ? test_rng_uniform(rng)
                      : k == LOSS_PW_KL_DIV && p->cfg->param == 0.0
                          ? 0.05 + 0.95 * test_rng_uniform(rng)
                          : test_rng_normal(rng);
    } while (!away_from_kinks(p));
    for (size_t i = 0; i < p->nw; i++)
        p->w[i] = 0.5 + test_rng_uniform(rng);
    for (size_t i = 0; i < p->npw; i++)
        p->pw[i] = 0.5 + 2.5 * test_rng_uniform(rng);
    for (size_t i = 0; i < p->ng; i++)
        p->g[i] = test_rng_normal(rng);
}

static void problem_init(struct problem *p, const struct config *cfg)
{
    struct shape none = {0, {0}};

    memset(p, 0, sizeof(*p));
    p->cfg = cfg;
    p->nw = cfg->w ? shape_numel(&cfg->ws) : 0;
    p->npw = cfg->pw ? shape_numel(&cfg->pws) : 0;
    p->x = xmalloc(shape_numel(&cfg->xs) * sizeof(double));
    p->y = xmalloc(shape_numel(&cfg->ys) * sizeof(double));
    p->w = cfg->w ? xmalloc(p->nw * sizeof(double)) : NULL;
    p->pw = cfg->pw ? xmalloc(p->npw * sizeof(double)) : NULL;
    setup_init(&p->s, cfg->kind, cfg->param, &cfg->xs, p->x, &cfg->ys, p->y,
               cfg->w ? &cfg->ws : &none, p->w, cfg->pw ? &cfg->pws : &none,
               p->pw);
    p->ng = cfg->gstride ? p->s.bc.numel : 1;
    p->g = xmalloc(p->ng * sizeof(double));
    p->out = xmalloc(p->s.bc.numel * sizeof(double));
}

static void problem_free(struct problem *p)
{
    free(p->x);
    free(p->y);
    free(p->w);
    free(p->pw);
    free(p->g);
    free(p->out);
}

/* sum_i g[i * gstride] * loss_i: the function whose gradient backward is. */
static double objective(void *ctx)
{
    struct problem *p = ctx;
    double f = 0.0;

    loss_pointwise_forward(&p->s.args, p->out, NULL);
    for (size_t i = 0; i < p->s.bc.numel; i++)
        f += p->g[i * p->cfg->gstride] * p->out[i];
    return f;
}

static const struct config fd_configs[] = {
    {"mse target over input",
     LOSS_PW_MSE,
     0,
     {2, {3, 4}},
     {1, {4}},
     {0},
     {0},
     0,
     0,
     1},
    {"mse sum", LOSS_PW_MSE, 0, {2, {3, 4}}, {2, {3, 4}}, {0}, {0}, 0, 0, 0},
    {"l1 input over target",
     LOSS_PW_L1,
     0,
     {1, {4}},
     {2, {3, 4}},
     {0},
     {0},
     0,
     0,
     1},
    {"smooth_l1 beta 0.5 both broadcast",
     LOSS_PW_SMOOTH_L1,
     0.5,
     {2, {3, 1}},
     {2, {1, 4}},
     {0},
     {0},
     0,
     0,
     1},
    {"smooth_l1 beta 0",
     LOSS_PW_SMOOTH_L1,
     0.0,
     {2, {3, 4}},
     {2, {3, 4}},
     {0},
     {0},
     0,
     0,
     1},
    {"huber delta 0.7",
     LOSS_PW_HUBER,
     0.7,
     {2, {3, 4}},
     {2, {1, 4}},
     {0},
     {0},
     0,
     0,
     1},
    {"bce weight [4]",
     LOSS_PW_BCE,
     0,
     {2, {3, 4}},
     {2, {3, 4}},
     {1, {4}},
     {0},
     1,
     0,
     1},
    {"bce mean", LOSS_PW_BCE, 0, {2, {3, 4}}, {2, {3, 4}}, {0}, {0}, 0, 0, 0},
    {"bce_logits",
     LOSS_PW_BCE_LOGITS,
     0,
     {2, {3, 4}},
     {2, {3, 4}},
     {0},
     {0},
     0,
     0,
     1},
    {"bce_logits weight [3,1] pos_weight [4]",
     LOSS_PW_BCE_LOGITS,
     0,
     {2, {3, 4}},
     {2, {3, 4}},
     {2, {3, 1}},
     {1, {4}},
     1,
     1,
     1},
    {"kl_div target over input",
     LOSS_PW_KL_DIV,
     0,
     {2, {3, 4}},
     {1, {4}},
     {0},
     {0},
     0,
     0,
     1},
    {"kl_div log_target input over target",
     LOSS_PW_KL_DIV,
     1,
     {1, {4}},
     {2, {3, 4}},
     {0},
     {0},
     0,
     0,
     1},
};

/* Central differences of every input and target element at random points. */
START_TEST(test_finite_differences)
{
    const unsigned long long seed = 20240611;
    int bad = 0;

    fprintf(stderr, "# finite differences: seed %llu, 3 points per config\n",
            seed);
    for (size_t c = 0; c < sizeof(fd_configs) / sizeof(fd_configs[0]); c++) {
        const struct config *cfg = &fd_configs[c];
        struct problem p;
        struct test_rng rng;
        double *gx, *gy, *scratch;
        size_t ns;

        problem_init(&p, cfg);
        test_rng_seed(&rng, seed + c);
        gx = xmalloc(p.s.nx * sizeof(double));
        gy = xmalloc(p.s.ny * sizeof(double));
        ns = loss_pointwise_scratch(&p.s.args, true, true);
        scratch = xmalloc(ns * sizeof(double));
        for (int point = 0; point < 3; point++) {
            problem_draw(&p, &rng);
            loss_pointwise_backward(&p.s.args, p.g, cfg->gstride, gx, gy,
                                    scratch, NULL);
            for (size_t i = 0; i < p.s.nx + p.s.ny; i++) {
                bool is_x = i < p.s.nx;
                size_t j = is_x ? i : i - p.s.nx;
                double num =
                    fd_partial(objective, &p, is_x ? p.x : p.y, j, FD_STEP);
                double ana = is_x ? gx[j] : gy[j];

                if (!fd_agree(ana, num)) {
                    fprintf(stderr,
                            "# %s (seed %llu, point %d): d/d%s[%zu] analytic "
                            "%.17g, numeric %.17g\n",
                            cfg->name, seed + c, point,
                            is_x ? "input" : "target", j, ana, num);
                    bad++;
                }
            }
        }
        free(gx);
        free(gy);
        free(scratch);
        problem_free(&p);
    }
    ck_assert_msg(bad == 0, "%d finite-difference failures (see log)", bad);
}
END_TEST

/*
 * Several blocks of 64 Ki elements, with sizes that are not multiples of
 * the block or of any chunk; broadcast shapes exercise the gathering path.
 */
#define BIG_N 397
#define BIG_C 521 /* BIG_N * BIG_C = 206837: four blocks, the last partial */

static const struct config big_configs[] = {
    {"mse",
     LOSS_PW_MSE,
     0,
     {2, {BIG_N, BIG_C}},
     {2, {BIG_N, BIG_C}},
     {0},
     {0},
     0,
     0,
     1},
    {"mse target over input",
     LOSS_PW_MSE,
     0,
     {2, {BIG_N, BIG_C}},
     {1, {BIG_C}},
     {0},
     {0},
     0,
     0,
     1},
    {"l1 input over target",
     LOSS_PW_L1,
     0,
     {2, {1, BIG_C}},
     {2, {BIG_N, BIG_C}},
     {0},
     {0},
     0,
     0,
     0},
    {"smooth_l1 both broadcast",
     LOSS_PW_SMOOTH_L1,
     0.5,
     {2, {BIG_N, 1}},
     {1, {BIG_C}},
     {0},
     {0},
     0,
     0,
     1},
    {"huber",
     LOSS_PW_HUBER,
     0.7,
     {2, {BIG_N, BIG_C}},
     {2, {BIG_N, BIG_C}},
     {0},
     {0},
     0,
     0,
     0},
    {"bce weight [C]",
     LOSS_PW_BCE,
     0,
     {2, {BIG_N, BIG_C}},
     {2, {BIG_N, BIG_C}},
     {1, {BIG_C}},
     {0},
     1,
     0,
     1},
    {"bce_logits full weights",
     LOSS_PW_BCE_LOGITS,
     0,
     {2, {BIG_N, BIG_C}},
     {2, {BIG_N, BIG_C}},
     {2, {BIG_N, BIG_C}},
     {2, {BIG_N, BIG_C}},
     1,
     1,
     1},
    {"bce_logits weight [N,1] pos_weight [C]",
     LOSS_PW_BCE_LOGITS,
     0,
     {2, {BIG_N, BIG_C}},
     {2, {BIG_N, BIG_C}},
     {2, {BIG_N, 1}},
     {1, {BIG_C}},
     1,
     1,
     1},
    {"kl_div target over input",
     LOSS_PW_KL_DIV,
     0,
     {2, {BIG_N, BIG_C}},
     {1, {BIG_C}},
     {0},
     {0},
     0,
     0,
     1},
    {"kl_div log_target",
     LOSS_PW_KL_DIV,
     1,
     {2, {BIG_N, BIG_C}},
     {2, {BIG_N, BIG_C}},
     {0},
     {0},
     0,
     0,
     1},
};

/* Forward and backward of p through ex into out, gx, gy. */
static unsigned run_all(struct problem *p, const struct loss_exec *ex,
                        double *out, double *gx, double *gy)
{
    size_t ns = loss_pointwise_scratch(&p->s.args, true, true);
    double *scratch = xmalloc(ns * sizeof(double));
    unsigned warn = loss_pointwise_forward(&p->s.args, out, ex);

    loss_pointwise_backward(&p->s.args, p->g, p->cfg->gstride, gx, gy, scratch,
                            ex);
    free(scratch);
    return warn;
}

/*
 * Broadcast operands expanded to the loss shape, for comparing the
 * gathering path with the dense one.
 */
static double *expand(const struct tensor_bcast *bc, const double *src,
                      bool use_a)
{
    double *dst = xmalloc(bc->numel * sizeof(double));
    struct tensor_iter it;

    tensor_iter_init(&it, bc, 0);
    for (size_t i = 0; i < bc->numel; i++) {
        dst[i] = src[use_a ? it.a : it.b];
        tensor_iter_next(&it);
    }
    return dst;
}

START_TEST(test_bit_identical_executors)
{
    const unsigned long long seed = 77;
    struct loss_exec *ex2 = test_exec_threads(2, seed);
    struct loss_exec *ex3 = test_exec_threads(3, seed + 1);
    int bad = 0;

    fprintf(stderr,
            "# bit identity: data seed %llu, executor seeds %llu "
            "(2 threads) and %llu (3 threads)\n",
            seed, seed, seed + 1);
    for (size_t c = 0; c < sizeof(big_configs) / sizeof(big_configs[0]); c++) {
        const struct config *cfg = &big_configs[c];
        const struct loss_exec *execs[2] = {ex2, ex3};
        struct problem p;
        struct test_rng rng;
        size_t n, bytes_x, bytes_y, bytes_o;
        double *out0, *gx0, *gy0;
        unsigned warn0;

        problem_init(&p, cfg);
        test_rng_seed(&rng, seed + c);
        /* No kink avoidance needed: these are compared with themselves. */
        for (size_t i = 0; i < p.s.nx; i++)
            p.x[i] = cfg->kind == LOSS_PW_BCE ? test_rng_uniform(&rng)
                                              : test_rng_normal(&rng);
        for (size_t i = 0; i < p.s.ny; i++)
            p.y[i] = cfg->kind == LOSS_PW_KL_DIV && cfg->param == 0.0
                         ? test_rng_uniform(&rng)
                         : test_rng_normal(&rng);
        for (size_t i = 0; i < p.nw; i++)
            p.w[i] = test_rng_uniform(&rng);
        for (size_t i = 0; i < p.npw; i++)
            p.pw[i] = 3.0 * test_rng_uniform(&rng);
        for (size_t i = 0; i < p.ng; i++)
            p.g[i] = test_rng_normal(&rng);
        n = p.s.bc.numel;
        bytes_x = p.s.nx * sizeof(double);
        bytes_y = p.s.ny * sizeof(double);
        bytes_o = n * sizeof(double);
        out0 = xmalloc(bytes_o);
        gx0 = xmalloc(bytes_x);
        gy0 = xmalloc(bytes_y);
        warn0 = run_all(&p, NULL, out0, gx0, gy0);
        for (size_t e = 0; e < 2; e++) {
            double *out = xmalloc(bytes_o), *gx = xmalloc(bytes_x);
            double *gy = xmalloc(bytes_y);
            unsigned warn = run_all(&p, execs[e], out, gx, gy);

            if (warn != warn0 || memcmp(out, out0, bytes_o) != 0 ||
                memcmp(gx, gx0, bytes_x) != 0 ||
                memcmp(gy, gy0, bytes_y) != 0) {
                fprintf(stderr, "# %s: executor %zu differs from serial\n",
                        cfg->name, e + 2);
                bad++;
            }
            free(out);
            free(gx);
            free(gy);
        }
        /* The same losses with every operand expanded (the dense path). */
        {
            struct shape full = {p.s.bc.ndim, {0}};
            double *ex = expand(&p.s.bc, p.x, true);
            double *ey = expand(&p.s.bc, p.y, false);
            double *ew = p.w ? expand(&p.s.wbc, p.w, true) : NULL;
            double *epw = p.pw ? expand(&p.s.pbc, p.pw, true) : NULL;
            double *out = xmalloc(bytes_o);
            struct setup d;

            memcpy(full.dim, p.s.bc.shape, sizeof(full.dim));
            setup_init(&d, cfg->kind, cfg->param, &full, ex, &full, ey, &full,
                       ew, &full, epw);
            if (loss_pointwise_forward(&d.args, out, ex3) != warn0 ||
                memcmp(out, out0, bytes_o) != 0) {
                fprintf(stderr,
                        "# %s: broadcast forward differs from the "
                        "expanded one\n",
                        cfg->name);
                bad++;
            }
            free(ex);
            free(ey);
            free(ew);
            free(epw);
            free(out);
        }
        free(out0);
        free(gx0);
        free(gy0);
        problem_free(&p);
    }
    test_exec_free(ex2);
    test_exec_free(ex3);
    ck_assert_msg(bad == 0, "%d bit-identity failures (see log)", bad);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core_pointwise");
    TCase *tc = tcase_create("pointwise");

    tcase_add_test(tc, test_reference_values);
    tcase_add_test(tc, test_quirks);
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_scratch_sizes);
    tcase_add_test(tc, test_finite_differences);
    tcase_add_test(tc, test_bit_identical_executors);
    suite_add_tcase(s, tc);
    return test_run(s);
}
