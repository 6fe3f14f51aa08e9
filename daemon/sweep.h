/*
 * sweep.h - the body of POST /v1/jobs turned into the kernel configurations a
 * batch queues: an explicit list of configurations, or a sweep over one
 * kernel's parameters (grid, random, list). Pure: no database, no executor;
 * api_jobs.c queues what this returns, tests/unit/test_daemon_sweep.c checks it.
 *
 * Bodies (dtype and repeats are per batch; a config of "configs" may name its
 * own dtype):
 *   {"configs": [{"kernel": "linear", "batch": 8, "in": 64, "out": 64}, ...]}
 *   {"sweep": {"type": "grid", "kernel": "linear_relu", "dtype": "fp16",
 *              "params": {"batch": [8, 16], "in": [64, 128], "out": [64]}}}
 *   {"sweep": {"type": "random", "kernel": "linear", "count": 500, "seed": 1,
 *              "params": {"batch": [1, 512], "in": [8, 4096], "out": 64}}}
 *   {"sweep": {"type": "list", "kernel": "layernorm",
 *              "points": [{"rows": 8, "cols": 64}, {"rows": 16, "cols": 64}]}}
 * plus, at the top level, "dtype", "repeats" (1..20) and "repeat_existing"
 * (boolean, default false). In a grid each parameter takes a list of values (or
 * one integer); in a random sweep a [low, high] range (or one integer, fixed):
 * integers drawn uniformly, log-uniformly where the catalogue marks the
 * parameter log_scale, from splitmix64 seeded by "seed" (default 1), so the
 * same body always gives the same configurations.
 *
 * Every mistake is a 422 whose detail names the member (e.g. "sweep.params.in"),
 * the parameter and the valid range; e->parameter carries the member path.
 */
#ifndef JETPROF_SWEEP_H
#define JETPROF_SWEEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "../cudakern/catalog.h"
#include "api.h"

struct sweep {
    char kind[16];                  /* "configs", "grid", "random", "list" */
    enum dtype dtype;               /* the batch's dtype (default fp32) */
    unsigned repeats;               /* 0 = the daemon's default */
    bool repeat_existing;
    size_t count;
    struct kernel_config *configs;  /* count entries, malloc'd */
};

/*
 * body -> s. max_jobs caps the number of configurations (measure.max_batch_jobs);
 * mem_free_bytes is passed to api_parse_kernel_config for every configuration
 * (0 = no limit). 0, or -1 with e (422; 500 when out of memory) and s empty.
 */
int sweep_expand(json_t *body, size_t max_jobs, uint64_t mem_free_bytes, struct sweep *s,
                 struct api_error *e);
void sweep_free(struct sweep *s);

/* splitmix64: the next value of the generator whose state is *state. */
uint64_t sweep_splitmix64(uint64_t *state);

/* One integer in [low, high] (low <= high) from the generator, uniformly or,
 * with log_scale (low >= 1), log-uniformly. */
int64_t sweep_draw(uint64_t *state, int64_t low, int64_t high, bool log_scale);

#endif
