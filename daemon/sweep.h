/*
 * sweep.h - the body of POST /v1/jobs turned into the kernel configurations a
 * batch queues: an explicit list of configurations, or a sweep over one
 * kernel's parameters (grid, random, list, adaptive). Pure: no database, no executor;
 * api_jobs.c queues what this returns, tests/unit/test_daemon_sweep.c checks it.
 *
 * The expansion itself (the body forms, grid order, the random sweep's seeded
 * splitmix64 draws, every check of the sweep members) is cudakern/sweep.h's,
 * which describes the forms and is shared with the client's `fleet submit
 * --shard`; sweep_splitmix64 and sweep_draw are declared there. What this adds
 * is the daemon's side: every configuration goes through
 * api_parse_kernel_config - the same strict check POST /v1/measure makes, with
 * the memory check - and the errors are api_errors.
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
#include "../cudakern/sweep.h" /* sweep_splitmix64, sweep_draw */
#include "api.h"

struct sweep {
    char kind[16];                  /* "configs", "grid", "random", "list", "adaptive" */
    enum dtype dtype;               /* the batch's dtype (default fp32) */
    unsigned repeats;               /* 0 = the daemon's default */
    bool repeat_existing;
    size_t count;
    struct kernel_config *configs;  /* count entries, malloc'd (an adaptive sweep: its initial
                                       sample) */
    bool is_adaptive;               /* kind "adaptive": adaptive holds its rounds */
    struct sweep_adaptive adaptive;
};

/*
 * body -> s. max_jobs caps the number of configurations (measure.max_batch_jobs);
 * mem_free_bytes is passed to api_parse_kernel_config for every configuration
 * (0 = no limit). 0, or -1 with e (422; 500 when out of memory) and s empty.
 */
int sweep_expand(json_t *body, size_t max_jobs, uint64_t mem_free_bytes, struct sweep *s,
                 struct api_error *e);
void sweep_free(struct sweep *s);

#endif
