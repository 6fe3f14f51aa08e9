/*
 * sweep.c - POST /v1/jobs bodies expanded into kernel configurations (see
 * sweep.h): cudakern/sweep.c expands and checks the sweep members; every
 * configuration it gives, whatever form it came in, goes through
 * api_parse_kernel_config - the same strict check POST /v1/measure makes,
 * against the free memory too - so a sweep can never queue what an ad-hoc
 * measurement would refuse; its errors are prefixed with where the
 * configuration came from ("configs[3]", "sweep (grid point 12)").
 */
#include "sweep.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The limit as messages name it (the configuration key). */
#define SWEEP_LIMIT_NAME "measure.max_batch_jobs"

struct parse_ctx {
    uint64_t mem_free_bytes;
    struct api_error *e;
};

/* Prefixes an error from api_parse_kernel_config with where the config came from. */
static void locate_error(struct api_error *e, const char *where)
{
    char detail[API_DETAIL_MAX], param[sizeof e->parameter];
    snprintf(detail, sizeof detail, "%s", e->detail);
    snprintf(param, sizeof param, "%s", e->parameter);
    unsigned status = e->status;
    api_error_set(e, status, "%s: %s", where, detail);
    if (param[0]) {
        char path[160];
        snprintf(path, sizeof path, "%s.%s", where, param);
        api_error_param(e, path);
    } else {
        api_error_param(e, where);
    }
}

/* sweep_config_parser: one configuration through api_parse_kernel_config. */
static int parse_config(void *ctx, json_t *config, const char *where, struct kernel_config *kc)
{
    struct parse_ctx *p = ctx;
    unsigned repeats;
    if (api_parse_kernel_config(config, p->mem_free_bytes, kc, &repeats, p->e) != 0) {
        locate_error(p->e, where);
        return -1;
    }
    return 0;
}

int sweep_expand(json_t *body, size_t max_jobs, uint64_t mem_free_bytes, struct sweep *s,
                 struct api_error *e)
{
    memset(s, 0, sizeof *s);
    memset(e, 0, sizeof *e);
    struct parse_ctx ctx = {.mem_free_bytes = mem_free_bytes, .e = e};
    const struct sweep_spec_options opt = {.max_configs = max_jobs,
                                           .limit_name = SWEEP_LIMIT_NAME,
                                           .parse = parse_config,
                                           .parse_ctx = &ctx};
    struct sweep_spec spec;
    struct sweep_spec_error err;
    if (sweep_spec_expand(body, &opt, &spec, &err) != 0) {
        s->dtype = DTYPE_FP32;
        switch (err.status) {
        case SWEEP_SPEC_REFUSED: /* parse_config has set e */
            break;
        case SWEEP_SPEC_NO_MEMORY:
            api_error_set(e, 500, "%s", err.detail);
            break;
        default:
            api_error_set(e, 422, "%s", err.detail);
            if (err.member[0])
                api_error_param(e, err.member);
            break;
        }
        return -1;
    }
    /* An adaptive batch grows by per_round jobs a round: all of them together
     * are what measure.max_batch_jobs bounds. */
    if (spec.is_adaptive) {
        const struct sweep_adaptive *a = &spec.adaptive;
        size_t most = a->initial;
        bool over = false;
        for (unsigned r = 0; r < a->rounds && !over; r++) {
            over = a->per_round > max_jobs - most;
            if (!over)
                most += a->per_round;
        }
        if (over) {
            api_error_set(e, 422,
                          "member 'sweep.per_round': %zu initial configurations and %u rounds of "
                          "%zu make more than %s = %zu jobs",
                          a->initial, a->rounds, a->per_round, SWEEP_LIMIT_NAME, max_jobs);
            api_error_param(e, "sweep.per_round");
            sweep_spec_free(&spec);
            s->dtype = DTYPE_FP32;
            return -1;
        }
    }
    snprintf(s->kind, sizeof s->kind, "%s", spec.kind);
    s->dtype = spec.dtype;
    s->repeats = spec.repeats;
    s->repeat_existing = spec.repeat_existing;
    s->count = spec.count;
    s->configs = spec.configs; /* handed over: sweep_free frees it */
    s->is_adaptive = spec.is_adaptive;
    s->adaptive = spec.adaptive;
    return 0;
}

void sweep_free(struct sweep *s)
{
    if (!s)
        return;
    free(s->configs);
    s->configs = NULL;
    s->count = 0;
}
