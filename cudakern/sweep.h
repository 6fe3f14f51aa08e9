/*
 * sweep.h - sweeps over the catalogue: the body of POST /v1/jobs (a sweep
 * spec) expanded into the kernel configurations it names, in a fixed order.
 * Pure: no HTTP, no database, no executor; it reads only the catalogue. The
 * daemon (daemon/sweep.c, POST /v1/jobs) and the client (jetprof fleet submit
 * --shard, which splits a sweep across identical boards) both expand with it,
 * so a workstation's shards are exactly the configurations a board expands.
 *
 * Specs (dtype and repeats are per batch; a config of "configs" may name its
 * own dtype):
 *   {"configs": [{"kernel": "linear", "batch": 8, "in": 64, "out": 64}, ...]}
 *   {"sweep": {"type": "grid", "kernel": "linear_relu", "dtype": "fp16",
 *              "params": {"batch": [8, 16], "in": [64, 128], "out": [64]}}}
 *   {"sweep": {"type": "random", "kernel": "linear", "count": 500, "seed": 1,
 *              "params": {"batch": [1, 512], "in": [8, 4096], "out": 64}}}
 *   {"sweep": {"type": "list", "kernel": "layernorm",
 *              "points": [{"rows": 8, "cols": 64}, {"rows": 16, "cols": 64}]}}
 *   {"sweep": {"type": "adaptive", "kernel": "linear", "seed": 1,
 *              "params": {"batch": [1, 512], "in": [8, 4096], "out": [8, 4096]},
 *              "initial": 40, "per_round": 20, "rounds": 3, "threshold": 0.1,
 *              "radius_log2": 0.5}}
 *     nn-Meter's adaptive sampling (predict/adaptive.h): expands to the initial
 *     random sample, exactly the random sweep {"count": initial} with the same
 *     kernel, params and seed would draw; the runner then trains after the
 *     batch's jobs end, proposes per_round configurations around the held-out
 *     ones predicted worse than threshold, queues them in the same batch, and
 *     repeats `rounds` times. initial in [TRAIN_MIN_ROWS = 20, max_configs],
 *     per_round in [1, max_configs], rounds in [1, SWEEP_ADAPTIVE_ROUNDS_MAX],
 *     threshold in (0, 10] (default 0.1), radius_log2 in (0, 4] (default 0.5).
 * plus, at the top level, "dtype", "repeats" (1..20) and "repeat_existing"
 * (boolean, default false).
 *
 * Order: "configs" and "list" as written; a grid as an odometer over the
 * catalogue's parameter order, the last parameter fastest; a random sweep
 * draws its configurations one after the other, each parameter in catalogue
 * order, from splitmix64 seeded by "seed" (default 1): integers uniformly in
 * [low, high], log-uniformly where the catalogue marks the parameter
 * log_scale. The same spec always gives the same configurations. Repeated
 * configurations (a random sweep can draw one twice) are all returned; the
 * daemon counts them as duplicates when it queues the batch, and
 * sweep_spec_unique() keeps the first of each.
 *
 * Every mistake names the member at fault (e.g. "sweep.params.in[1]"), the
 * parameter and the valid range. Sizes are checked against max_configs before
 * anything is allocated, so a huge grid costs nothing.
 */
#ifndef JETPROF_CUDAKERN_SWEEP_H
#define JETPROF_CUDAKERN_SWEEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "catalog.h"

#define SWEEP_REPEATS_MIN 1
#define SWEEP_REPEATS_MAX 20
#define SWEEP_DEFAULT_SEED 1
/* Values per grid parameter: more is a sweep nobody means (64^3 points already). */
#define SWEEP_GRID_AXIS_MAX 64
#define SWEEP_DETAIL_MAX 640
#define SWEEP_MEMBER_MAX 160

enum sweep_spec_status {
    SWEEP_SPEC_OK = 0,
    SWEEP_SPEC_INVALID,   /* the spec is wrong: detail and member say where */
    SWEEP_SPEC_NO_MEMORY, /* out of memory */
    SWEEP_SPEC_REFUSED,   /* the caller's parser refused a configuration (its own error) */
};

struct sweep_spec_error {
    enum sweep_spec_status status;
    /* The whole message, e.g. "member 'sweep.params.in[1]': parameter 'in' = 0 is
     * outside linear's range [1, 65536]". */
    char detail[SWEEP_DETAIL_MAX];
    /* The member at fault ("sweep.params.in[1]", "configs[3]"), "" when none. */
    char member[SWEEP_MEMBER_MAX];
};

/*
 * Turns one configuration, an object as POST /v1/measure takes it ({"kernel",
 * "dtype", parameters}), into kc: 0, or -1 having recorded its own error in
 * ctx. where names the configuration's place in the spec: "configs[3]",
 * "sweep (grid point 12)", "sweep (random draw 7)", "sweep.points[2]".
 * The daemon's checks the memory the configuration needs too.
 */
typedef int (*sweep_config_parser)(void *ctx, json_t *config, const char *where,
                                   struct kernel_config *kc);

struct sweep_spec_options {
    size_t max_configs;        /* more configurations are refused; 0: every spec is */
    const char *limit_name;    /* what messages call max_configs, e.g.
                                  "measure.max_batch_jobs" (NULL: "the limit") */
    sweep_config_parser parse; /* NULL: sweep_parse_config (the catalogue alone) */
    void *parse_ctx;
};

#define SWEEP_ADAPTIVE_ROUNDS_MAX 20
#define SWEEP_ADAPTIVE_MIN_INITIAL 20 /* = TRAIN_MIN_ROWS: fewer cannot be trained on */

/* What an "adaptive" sweep asks of the rounds after its initial sample. */
struct sweep_adaptive {
    const struct catalog_kernel *kernel;
    size_t initial, per_round;
    unsigned rounds;
    double threshold, radius_log2;
    uint64_t seed;
    int64_t low[CATALOG_MAX_PARAMS], high[CATALOG_MAX_PARAMS]; /* catalogue order */
};

struct sweep_spec {
    char kind[16];                  /* "configs", "grid", "random", "list", "adaptive" */
    enum dtype dtype;               /* the batch's dtype (default fp32) */
    unsigned repeats;               /* 0 = not given */
    bool repeat_existing;
    size_t count;
    struct kernel_config *configs;  /* count entries, malloc'd */
    bool is_adaptive;               /* kind "adaptive": adaptive holds its rounds */
    struct sweep_adaptive adaptive;
};

/*
 * body -> s, in the order above. 0, or -1 with err (s empty). With
 * opt->parse every configuration, however it was given, goes through it.
 */
int sweep_spec_expand(json_t *body, const struct sweep_spec_options *opt, struct sweep_spec *s,
                      struct sweep_spec_error *err);
void sweep_spec_free(struct sweep_spec *s);

/*
 * Drops every configuration equal to an earlier one (same kernel, dtype and
 * parameters), keeping the order of the rest. *dropped (may be NULL) counts
 * them. 0, or -1 when out of memory (s unchanged).
 */
int sweep_spec_unique(struct sweep_spec *s, size_t *dropped);

/*
 * The parser used without opt->parse: config must be an object with a
 * catalogue "kernel", an optional "dtype" and every parameter of the kernel
 * (integers within range), nothing else; then catalog_validate() with no
 * memory limit. 0, or -1 with err (member names where, or the member in it).
 */
int sweep_parse_config(json_t *config, const char *where, struct kernel_config *kc,
                       struct sweep_spec_error *err);

/* {"kernel": ..., "dtype": ..., parameters in catalogue order}: the object
 * POST /v1/measure and a "configs" entry take. NULL when out of memory. */
json_t *sweep_config_json(const struct kernel_config *kc);

/* splitmix64: the next value of the generator whose state is *state. */
uint64_t sweep_splitmix64(uint64_t *state);

/* One integer in [low, high] (low <= high) from the generator, uniformly or,
 * with log_scale (low >= 1), log-uniformly. */
int64_t sweep_draw(uint64_t *state, int64_t low, int64_t high, bool log_scale);

#endif
