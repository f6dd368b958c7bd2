/*
 * registry.c - the one table of every loss lossd serves.
 *
 * Each entry is the loss's plain description (proto/schema.h: tensors,
 * options with types, defaults and ranges, reductions) plus its family and
 * kind. Validation (call.c), GET /v1/losses and the OpenAPI document are all
 * generated from this table, so they cannot drift apart.
 *
 * Test builds append losses of their own (handler_test_losses below); the
 * shipped lossd has none.
 */
#include <string.h>

#include "internal.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define RED3     (PROTO_RED_NONE | PROTO_RED_MEAN | PROTO_RED_SUM)

static const struct proto_tensor_desc regression_tensors[] = {
    {"input", true, true, "any shape"},
    {"target", true, true, "broadcastable with input"},
};

static const struct proto_option_desc smooth_l1_options[] = {
    {.name = "beta",
     .type = PROTO_OPT_NUMBER,
     .description = "threshold between the quadratic and linear parts",
     .def_number = 1.0,
     .has_default = true,
     .has_minimum = true,
     .minimum = 0.0},
};

static const struct proto_option_desc huber_options[] = {
    {.name = "delta",
     .type = PROTO_OPT_NUMBER,
     .description = "threshold between the quadratic and linear parts",
     .def_number = 1.0,
     .has_default = true,
     .has_minimum = true,
     .minimum = 0.0,
     .exclusive_minimum = true},
};

static const struct proto_tensor_desc class_tensors[] = {
    {"input", true, true, "(C), (N, C) or (N, C, d1, ..., dk) logits"},
    {"target", true, true,
     "class indices: (), (N) or (N, d1, ..., dk); or probabilities with "
     "the input's shape (differentiable only then)"},
    {"weight", false, false, "(C) class weights"},
};

static const struct proto_tensor_desc nll_tensors[] = {
    {"input", true, true,
     "(C), (N, C) or (N, C, d1, ..., dk) log-probabilities"},
    {"target", true, false, "class indices: (), (N) or (N, d1, ..., dk)"},
    {"weight", false, false, "(C) class weights"},
};

#define IGNORE_INDEX_OPTION                                                    \
    {                                                                          \
        .name = "ignore_index", .type = PROTO_OPT_INTEGER,                     \
        .description = "a target value that is ignored and does not count",    \
        .def_number = -100.0, .has_default = true                              \
    }

static const struct proto_option_desc cross_entropy_options[] = {
    IGNORE_INDEX_OPTION,
    {.name = "label_smoothing",
     .type = PROTO_OPT_NUMBER,
     .description = "mixes the target with the uniform distribution",
     .def_number = 0.0,
     .has_default = true,
     .has_minimum = true,
     .minimum = 0.0,
     .has_maximum = true,
     .maximum = 1.0},
};

static const struct proto_option_desc nll_options[] = {
    IGNORE_INDEX_OPTION,
};

static const struct proto_tensor_desc bce_tensors[] = {
    {"input", true, true, "probabilities in [0, 1], any shape"},
    {"target", true, true, "in [0, 1], the input's shape"},
    {"weight", false, false, "broadcastable to the input's shape"},
};

static const struct proto_tensor_desc bce_logits_tensors[] = {
    {"input", true, true, "logits, any shape"},
    {"target", true, true, "the input's shape"},
    {"weight", false, false, "broadcastable to the input's shape"},
    {"pos_weight", false, false,
     "weight of positive examples, broadcastable to the input's shape "
     "(usually (C) along the last dimension)"},
};

static const struct proto_tensor_desc kl_div_tensors[] = {
    {"input", true, true, "log-probabilities, any shape"},
    {"target", true, true,
     "probabilities (or log-probabilities with log_target), broadcastable "
     "with input"},
};

static const struct proto_option_desc kl_div_options[] = {
    {.name = "log_target",
     .type = PROTO_OPT_BOOLEAN,
     .description = "target holds log-probabilities",
     .def_boolean = false,
     .has_default = true},
};

static const struct proto_tensor_desc softmax_tensors[] = {
    {"input", true, true, "any shape"},
};

static const struct proto_option_desc softmax_options[] = {
    {.name = "dim",
     .type = PROTO_OPT_INTEGER,
     .description = "the dimension to normalize; negative counts from the "
                    "end; without it, 1 for inputs of 2 or more dimensions, "
                    "else 0 (with an implicit-dim warning)"},
};

static const struct proto_tensor_desc nce_tensors[] = {
    {"query", true, true, "(N, D)"},
    {"positive_key", true, true, "(N, D)"},
    {"negative_keys", false, true,
     "(M, D) when negative_mode is unpaired, (N, M, D) when paired"},
};

static const char *const nce_variants[] = {"pairs", "symmetric", "nt_xent",
                                           NULL};
static const char *const nce_modes[] = {"unpaired", "paired", NULL};

static const struct proto_option_desc nce_options[] = {
    {.name = "temperature",
     .type = PROTO_OPT_NUMBER,
     .description = "divides the similarities",
     .def_number = 0.1,
     .has_default = true,
     .has_minimum = true,
     .minimum = 0.0,
     .exclusive_minimum = true},
    {.name = "normalize",
     .type = PROTO_OPT_BOOLEAN,
     .description = "L2-normalize every vector first (x / max(|x|, 1e-12))",
     .def_boolean = true,
     .has_default = true},
    {.name = "variant",
     .type = PROTO_OPT_STRING,
     .description = "pairs (q k^T, positives on the diagonal), symmetric "
                    "(CLIP), nt_xent (SimCLR over cat(q, k))",
     .def_string = "pairs",
     .has_default = true,
     .choices = nce_variants},
    {.name = "negative_mode",
     .type = PROTO_OPT_STRING,
     .description = "unpaired: negatives shared by all queries; paired: "
                    "per query",
     .def_string = "unpaired",
     .has_default = true,
     .choices = nce_modes},
    {.name = "mask_self",
     .type = PROTO_OPT_BOOLEAN,
     .description = "nt_xent only: remove each sample's similarity with "
                    "itself (SimCLR); false gives the naive formula",
     .def_boolean = true,
     .has_default = true},
};

static const struct handler_loss losses[] = {
    {{.name = "mse",
      .summary = "Mean squared error: (input - target)^2",
      .torch = "torch.nn.functional.mse_loss",
      .tensors = regression_tensors,
      .ntensors = COUNT(regression_tensors),
      .reductions = RED3,
      .has_sum = true},
     &handler_pointwise_family,
     LOSS_PW_MSE},
    {{.name = "l1",
      .summary = "Mean absolute error: |input - target|",
      .torch = "torch.nn.functional.l1_loss",
      .tensors = regression_tensors,
      .ntensors = COUNT(regression_tensors),
      .reductions = RED3,
      .has_sum = true},
     &handler_pointwise_family,
     LOSS_PW_L1},
    {{.name = "smooth_l1",
      .summary = "Smooth L1: quadratic below beta, linear above",
      .torch = "torch.nn.functional.smooth_l1_loss",
      .tensors = regression_tensors,
      .ntensors = COUNT(regression_tensors),
      .options = smooth_l1_options,
      .noptions = COUNT(smooth_l1_options),
      .reductions = RED3,
      .has_sum = true},
     &handler_pointwise_family,
     LOSS_PW_SMOOTH_L1},
    {{.name = "huber",
      .summary = "Huber: quadratic below delta, delta-scaled linear above",
      .torch = "torch.nn.functional.huber_loss",
      .tensors = regression_tensors,
      .ntensors = COUNT(regression_tensors),
      .options = huber_options,
      .noptions = COUNT(huber_options),
      .reductions = RED3,
      .has_sum = true},
     &handler_pointwise_family,
     LOSS_PW_HUBER},
    {{.name = "cross_entropy",
      .summary = "Cross-entropy of logits with class indices or "
                 "probabilities",
      .torch = "torch.nn.functional.cross_entropy",
      .tensors = class_tensors,
      .ntensors = COUNT(class_tensors),
      .options = cross_entropy_options,
      .noptions = COUNT(cross_entropy_options),
      .reductions = RED3,
      .has_sum = true},
     &handler_class_family,
     1},
    {{.name = "nll",
      .summary = "Negative log-likelihood of log-probabilities",
      .torch = "torch.nn.functional.nll_loss",
      .tensors = nll_tensors,
      .ntensors = COUNT(nll_tensors),
      .options = nll_options,
      .noptions = COUNT(nll_options),
      .reductions = RED3,
      .has_sum = true},
     &handler_class_family,
     0},
    {{.name = "binary_cross_entropy",
      .summary = "Binary cross-entropy of probabilities",
      .torch = "torch.nn.functional.binary_cross_entropy",
      .tensors = bce_tensors,
      .ntensors = COUNT(bce_tensors),
      .reductions = RED3,
      .has_sum = true},
     &handler_pointwise_family,
     LOSS_PW_BCE},
    {{.name = "binary_cross_entropy_with_logits",
      .summary = "Binary cross-entropy of logits (numerically stable)",
      .torch = "torch.nn.functional.binary_cross_entropy_with_logits",
      .tensors = bce_logits_tensors,
      .ntensors = COUNT(bce_logits_tensors),
      .reductions = RED3,
      .has_sum = true},
     &handler_pointwise_family,
     LOSS_PW_BCE_LOGITS},
    {{.name = "kl_div",
      .summary = "Kullback-Leibler divergence of log-probabilities",
      .torch = "torch.nn.functional.kl_div",
      .tensors = kl_div_tensors,
      .ntensors = COUNT(kl_div_tensors),
      .options = kl_div_options,
      .noptions = COUNT(kl_div_options),
      .reductions = RED3 | PROTO_RED_BATCHMEAN,
      .has_sum = true},
     &handler_pointwise_family,
     LOSS_PW_KL_DIV},
    {{.name = "log_softmax",
      .summary = "log_softmax along one dimension",
      .torch = "torch.nn.functional.log_softmax",
      .tensors = softmax_tensors,
      .ntensors = COUNT(softmax_tensors),
      .options = softmax_options,
      .noptions = COUNT(softmax_options)},
     &handler_softmax_family,
     1},
    {{.name = "softmax",
      .summary = "softmax along one dimension",
      .torch = "torch.nn.functional.softmax",
      .tensors = softmax_tensors,
      .ntensors = COUNT(softmax_tensors),
      .options = softmax_options,
      .noptions = COUNT(softmax_options)},
     &handler_softmax_family,
     0},
    {{.name = "info_nce",
      .summary = "InfoNCE contrastive loss: pairs, CLIP-symmetric, "
                 "SimCLR NT-Xent, explicit negatives",
      .torch =
          "cross_entropy over similarity logits (docs/api.md, \"info_nce\")",
      .tensors = nce_tensors,
      .ntensors = COUNT(nce_tensors),
      .options = nce_options,
      .noptions = COUNT(nce_options),
      .reductions = RED3,
      .has_sum = true},
     &handler_nce_family,
     0},
};

/*
 * Losses that exist only in test builds, served after the ones above: a
 * NULL-terminated table that a test executable defines (lossd-test,
 * tests/server/blocking_loss.c). Nothing in the shipped lossd defines it, so
 * this weak reference is NULL there.
 *
 * A weak reference, not a weak empty definition here: GCC folds the reads of
 * a const definition it can see even when it is weak, and bounds loops by
 * its size, so a test build's table would not be read past its first entry,
 * or at all.
 */
extern const struct handler_loss *const handler_test_losses[]
    __attribute__((weak));

static size_t test_count(void)
{
    size_t n = 0;

    if (handler_test_losses != NULL)
        while (handler_test_losses[n] != NULL)
            n++;
    return n;
}

static bool name_is(const struct handler_loss *l, const char *name, size_t len)
{
    return strlen(l->desc.name) == len && memcmp(l->desc.name, name, len) == 0;
}

const struct handler_loss *handler_find(const char *name, size_t len)
{
    size_t ntest = test_count();

    for (size_t i = 0; i < COUNT(losses); i++)
        if (name_is(&losses[i], name, len))
            return &losses[i];
    for (size_t i = 0; i < ntest; i++)
        if (name_is(handler_test_losses[i], name, len))
            return handler_test_losses[i];
    return NULL;
}

size_t handler_count(void)
{
    return COUNT(losses) + test_count();
}

const struct handler_loss *handler_at(size_t i)
{
    if (i < COUNT(losses))
        return &losses[i];
    i -= COUNT(losses);
    return i < test_count() ? handler_test_losses[i] : NULL;
}

const struct proto_loss_desc *handler_describe(const struct handler_loss *l)
{
    return &l->desc;
}
