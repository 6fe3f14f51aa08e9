/*
 * app.h - the state main.c builds at start-up and every HTTP handler reads.
 *
 * Everything here is set before the HTTP server starts and is read-only
 * afterwards, except through the objects' own thread-safe interfaces (db_pool,
 * runner, sampler).
 */
#ifndef JETPROF_APP_H
#define JETPROF_APP_H

#include <stdatomic.h>
#include <stdint.h>

#include "../cudakern/exec.h"
#include "../db/db.h"
#include "../sensors/sampler.h"
#include "../sensors/sensor.h"
#include "config.h"
#include "models_state.h"
#include "runner.h"

#define JETPROF_VERSION "0.1.0"

struct app {
    const struct config *cfg;
    struct db_pool *pool;
    struct runner *runner;
    struct sensor *sensor;
    struct sampler *sampler;
    /* The executor the runner drives. HTTP threads may only call its thread-safe
     * operations (exec_memory_needed, exec_memory_free); NULL = not known, and
     * the figures captured in exec_info at start are used instead. */
    struct executor *exec;
    struct exec_info exec_info;  /* the executor chosen at start (a snapshot) */
    char executor_why[256];      /* one sentence: why this executor */
    char sensor_why[256];        /* one sentence: why this sensor backend */
    /* The device row: written at start, replaced when PUT /v1/sensor/sampling
     * changes the sampling (part of the fingerprint). HTTP threads read and
     * write both under api_device_lock (api.h). */
    struct db_device device;
    int64_t device_id;
    /* The measurement context the runner uses; the sampling endpoint points it
     * at the new device row. NULL in tests without a runner. */
    struct measure_ctx *mctx;
    int64_t started_mono_ns;
    char started_at[32];         /* ISO-8601 UTC */
    char token[256];             /* bearer token; "" = auth off */
    /* The measurement-window marker (gpio_marker.h) when sensor.gpio_chip is
     * set, else NULL. Opened at start; only the runner's measurement drives it. */
    struct gpio_marker *marker;
    /* Shutdown and GET /v1/power/stream: main sets stopping before the HTTP
     * server stops, so open streams end cleanly; streams_active counts them
     * (api_power.c) against server.max_streams. */
    atomic_bool stopping;
    /* The predictors and the prediction cache (models_state.h); NULL in tests
     * that need none. Training on the runner replaces its model set. */
    struct models_state *models;
    atomic_uint streams_active;
};

#endif
