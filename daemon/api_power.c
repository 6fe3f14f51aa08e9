/*
 * api_power.c - the power the sensor sees right now: GET /v1/power (the latest
 * sample of every rail, the sampling asked and got, the expected and achieved
 * rate) and GET /v1/power/stream (the same samples as Server-Sent Events).
 *
 * The stream is a chunked response whose body http.c pulls from stream_read()
 * on an HTTP pool thread. That thread is the stream's for as long as it lasts:
 * stream_read blocks (in sampler_wait_for, in slices of STREAM_SLICE_MS so it
 * notices shutdown) until the next event is due, and returns as soon as it has
 * something to send, so other connections on the same pool thread still get
 * served between events. It never returns 0 (libmicrohttpd would call it again
 * at once: a busy loop): when the sampler delivers nothing for
 * STREAM_HEARTBEAT_MS it sends an SSE comment instead, which also keeps idle
 * proxies and the connection timeout at bay. Because every open stream holds a
 * pool thread, at most min(server.max_streams, server.threads - 1) run at once
 * (503 beyond), so the API always keeps a thread for everything else.
 *
 * Events: "id: N" (1, 2, ...) and "data: {json}" with the sample as
 * api_power_sample_json() shows it. With an interval (sensor.stream_interval_ms
 * or ?interval_ms) an event carries the latest sample once per interval of
 * sample time; with 0 every sample is sent, batched per read. ?count=N ends the
 * stream after N events. At shutdown main.c sets app->stopping and the stream
 * ends with the terminating chunk before the server stops.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/clock.h"
#include "../common/log.h"
#include "api.h"

#define NS_PER_MS 1000000LL
#define STREAM_SLICE_MS 100      /* longest uninterrupted wait: shutdown is seen this fast */
#define STREAM_HEARTBEAT_MS 1000 /* a comment when no event for this long */
#define STREAM_BATCH 64          /* samples formatted per read in every-sample mode */
#define STREAM_COUNT_MAX 1000000u
#define STREAM_INTERVAL_MAX_MS 60000u
#define STREAM_RETRY_AFTER_S 5

/* ---- shared by both endpoints ---- */

json_t *api_power_sample_json(const struct sensor *s, const struct sensor_sample *smp,
                              int64_t now_ns)
{
    json_t *rails = json_array();
    if (!rails)
        return NULL;
    for (unsigned i = 0; i < s->rail_count && i < SENSOR_MAX_RAILS; i++) {
        json_t *rail = json_pack("{s:s,s:b,s:f,s:f,s:f}", "name", s->rails[i].name,
                                 "board_input", s->rails[i].is_board_input, "voltage_mv",
                                 smp->voltage_mv[i], "current_ma", smp->current_ma[i],
                                 "power_mw", smp->power_mw[i]);
        if (!rail || json_array_append_new(rails, rail) != 0) {
            json_decref(rail);
            json_decref(rails);
            return NULL;
        }
    }
    double age_ms = (double)(now_ns - smp->t_ns) / (double)NS_PER_MS;
    if (age_ms < 0.0)
        age_ms = 0.0;
    return json_pack("{s:I,s:f,s:o}", "t_ns", (json_int_t)smp->t_ns, "age_ms", age_ms, "rails",
                     rails);
}

static json_t *sampling_json(const struct sensor_sampling *s)
{
    return json_pack("{s:I,s:I,s:I,s:I}", "averaging", (json_int_t)s->averaging, "bus_conv_us",
                     (json_int_t)s->bus_conv_us, "shunt_conv_us", (json_int_t)s->shunt_conv_us,
                     "period_us", (json_int_t)s->period_us);
}

static bool no_sensor(struct api_request *req, struct api_response *res)
{
    if (req->app->sensor && req->app->sampler)
        return false;
    struct api_error e;
    api_error_set(&e, 503, "no power sensor is running");
    api_respond_error(res, &e, req->path);
    return true;
}

/* ---- GET /v1/power ---- */

void api_power_get(struct api_request *req, struct api_response *res)
{
    struct app *app = req->app;
    if (no_sensor(req, res))
        return;
    const struct sensor *s = app->sensor;
    struct sensor_sample smp;
    if (sampler_latest(app->sampler, &smp) != 0) {
        struct api_error e;
        api_error_set(&e, 503,
                      "no power sample yet: the sampler of sensor '%s' has not delivered its "
                      "first sample; try again shortly",
                      s->backend->name);
        api_respond_error(res, &e, req->path);
        res->retry_after_s = 1;
        return;
    }
    struct sensor_sampling asked, got;
    sampler_sampling(app->sampler, &asked, &got);
    struct sampler_status st;
    sampler_get_status(app->sampler, &st);

    json_t *doc = api_power_sample_json(s, &smp, clock_mono_ns());
    json_t *input = s->board_input_rail >= 0 && (unsigned)s->board_input_rail < s->rail_count
                        ? json_string(s->rails[s->board_input_rail].name)
                        : json_null();
    json_t *expected = got.period_us > 0 ? json_real(1e6 / (double)got.period_us) : json_null();
    json_t *extra = json_pack("{s:b,s:s,s:o*,s:b,s:{s:o*,s:o*},s:o*,s:f}", "simulated",
                              s->simulated, "backend", s->backend->name, "board_input_rail",
                              input, "board_input_is_sum", s->board_input_is_sum, "sampling",
                              "asked", sampling_json(&asked), "got", sampling_json(&got),
                              "expected_rate_hz", expected, "achieved_rate_hz",
                              st.achieved_rate_hz);
    if (!doc || !extra || json_object_update(doc, extra) != 0) {
        json_decref(doc);
        json_decref(extra);
        api_respond_json(res, 500, NULL);
        return;
    }
    json_decref(extra);
    api_respond_json(res, 200, doc);
}

/* ---- GET /v1/power/stream ---- */

static const char *const stream_query_names[] = {"count", "interval_ms"};
#define STREAM_QUERY_COUNT (sizeof(stream_query_names) / sizeof(stream_query_names[0]))

/* Strict decimal unsigned in [lo, hi]. */
static int parse_bounded(const char *text, uint64_t lo, uint64_t hi, uint64_t *out)
{
    int64_t v;
    if (!text || text[0] == '-' || text[0] == '+' || api_parse_int64(text, &v) != 0 ||
        v < 0 || (uint64_t)v < lo || (uint64_t)v > hi)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

int api_parse_stream_query(const struct api_query_param *q, size_t n, unsigned default_interval_ms,
                           struct api_stream_query *out, struct api_error *e)
{
    bool seen[STREAM_QUERY_COUNT] = {false};
    memset(e, 0, sizeof(*e));
    out->count = 0;
    out->interval_ms = default_interval_ms;
    for (size_t i = 0; i < n; i++) {
        const char *key = q[i].key ? q[i].key : "";
        const char *val = q[i].value ? q[i].value : "";
        char k[64], v[64];
        text_quote(key, k, sizeof(k));
        text_quote(val, v, sizeof(v));
        size_t which = STREAM_QUERY_COUNT;
        for (size_t j = 0; j < STREAM_QUERY_COUNT; j++)
            if (strcmp(key, stream_query_names[j]) == 0)
                which = j;
        if (which == STREAM_QUERY_COUNT) {
            api_error_set(e, 400, "unknown query parameter '%s'; accepted: count, interval_ms", k);
            api_error_param(e, k);
            return -1;
        }
        if (seen[which]) {
            api_error_set(e, 400, "query parameter '%s' is given more than once", k);
            api_error_param(e, k);
            return -1;
        }
        seen[which] = true;
        uint64_t x;
        if (which == 0) {
            if (parse_bounded(val, 1, STREAM_COUNT_MAX, &x) != 0) {
                api_error_set(e, 400,
                              "query parameter 'count' = '%s': expected an integer in [1, %u] "
                              "(events to send before the stream ends)",
                              v, STREAM_COUNT_MAX);
                api_error_param(e, "count");
                return -1;
            }
            out->count = x;
        } else {
            if (parse_bounded(val, 0, STREAM_INTERVAL_MAX_MS, &x) != 0) {
                api_error_set(e, 400,
                              "query parameter 'interval_ms' = '%s': expected an integer in "
                              "[0, %u] (0 = every sample)",
                              v, STREAM_INTERVAL_MAX_MS);
                api_error_param(e, "interval_ms");
                return -1;
            }
            out->interval_ms = (unsigned)x;
        }
    }
    return 0;
}

struct power_stream {
    struct app *app;
    int64_t interval_ns;  /* 0 = every sample */
    uint64_t remaining;   /* events still to send; 0 = endless */
    uint64_t next_id;
    int64_t last_t_ns;    /* sample time of the last event sent */
    bool sent_any;
    bool done;            /* count reached: end after what is pending */
    char *pending;        /* formatted bytes not yet handed out */
    size_t pending_len, pending_off, pending_cap;
    struct sensor_sample batch[STREAM_BATCH];
};

static void stream_free(void *ctx)
{
    struct power_stream *ps = ctx;
    if (!ps)
        return;
    atomic_fetch_sub(&ps->app->streams_active, 1);
    free(ps->pending);
    free(ps);
}

static int pending_append(struct power_stream *ps, const char *text, size_t len)
{
    if (ps->pending_len + len > ps->pending_cap) {
        size_t cap = ps->pending_cap ? ps->pending_cap : 4096;
        while (cap < ps->pending_len + len)
            cap *= 2;
        char *p = realloc(ps->pending, cap);
        if (!p)
            return -1;
        ps->pending = p;
        ps->pending_cap = cap;
    }
    memcpy(ps->pending + ps->pending_len, text, len);
    ps->pending_len += len;
    return 0;
}

/* "id: N\ndata: {json}\n\n" for one sample. */
static int add_event(struct power_stream *ps, const struct sensor_sample *smp, int64_t now_ns)
{
    json_t *doc = api_power_sample_json(ps->app->sensor, smp, now_ns);
    if (doc && json_object_set_new(doc, "simulated", json_boolean(ps->app->sensor->simulated))) {
        json_decref(doc);
        doc = NULL;
    }
    char *data = doc ? json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;
    json_decref(doc);
    if (!data)
        return -1;
    char head[48];
    int hn = snprintf(head, sizeof(head), "id: %" PRIu64 "\ndata: ", ++ps->next_id);
    int rc = pending_append(ps, head, (size_t)hn) == 0 &&
                     pending_append(ps, data, strlen(data)) == 0 &&
                     pending_append(ps, "\n\n", 2) == 0
                 ? 0
                 : -1;
    free(data);
    ps->last_t_ns = smp->t_ns;
    ps->sent_any = true;
    if (ps->remaining > 0 && --ps->remaining == 0)
        ps->done = true;
    return rc;
}

/*
 * Formats what is due into pending: every sample newer than the last event, or
 * the latest one once an interval of sample time has passed. 1 when something
 * was added, 0 when nothing is due yet, -1 when out of memory.
 */
static int collect_events(struct power_stream *ps)
{
    struct sampler *sp = ps->app->sampler;
    int64_t now = clock_mono_ns();
    if (ps->interval_ns == 0) {
        size_t want = STREAM_BATCH;
        if (ps->remaining > 0 && ps->remaining < want)
            want = (size_t)ps->remaining;
        size_t n = sampler_samples_since(sp, ps->sent_any ? ps->last_t_ns : INT64_MIN,
                                         ps->batch, want);
        for (size_t i = 0; i < n; i++)
            if (add_event(ps, &ps->batch[i], now) != 0)
                return -1;
        return n > 0;
    }
    struct sensor_sample smp;
    if (sampler_latest(sp, &smp) != 0)
        return 0;
    if (ps->sent_any && smp.t_ns < ps->last_t_ns + ps->interval_ns)
        return 0;
    return add_event(ps, &smp, now) == 0 ? 1 : -1;
}

/* The sample time the next event waits for. */
static int64_t next_due_ns(const struct power_stream *ps)
{
    if (!ps->sent_any)
        return INT64_MIN;
    return ps->last_t_ns + (ps->interval_ns > 0 ? ps->interval_ns : 1);
}

static ssize_t stream_read(void *ctx, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct power_stream *ps = ctx;
    int64_t quiet_since = clock_mono_ns();
    while (ps->pending_off == ps->pending_len) {
        ps->pending_off = ps->pending_len = 0;
        if (ps->done || atomic_load(&ps->app->stopping))
            return API_STREAM_END;
        int got = collect_events(ps);
        if (got < 0) {
            log_warn("http", "power stream: out of memory formatting an event; ending it");
            return API_STREAM_ERROR;
        }
        if (got > 0)
            break;
        if (clock_mono_ns() - quiet_since >= STREAM_HEARTBEAT_MS * NS_PER_MS) {
            static const char beat[] = ": no new sample\n\n";
            if (pending_append(ps, beat, sizeof(beat) - 1) != 0)
                return API_STREAM_ERROR;
            break;
        }
        /* Blocks until the next event is due or a slice passes, then re-checks
         * stopping. A wait that fails early (the sampler is stopping) still
         * takes its slice, so this never spins. */
        int64_t slice_end = clock_mono_ns() + STREAM_SLICE_MS * NS_PER_MS;
        if (sampler_wait_for(ps->app->sampler, next_due_ns(ps), STREAM_SLICE_MS) != 0 &&
            clock_mono_ns() < slice_end)
            clock_sleep_until_ns(slice_end);
    }
    size_t n = ps->pending_len - ps->pending_off;
    if (n > max)
        n = max;
    memcpy(buf, ps->pending + ps->pending_off, n);
    ps->pending_off += n;
    return (ssize_t)n;
}

/* Streams that may run at once: each holds a pool thread, and one thread stays free. */
static unsigned stream_cap(const struct config *cfg)
{
    unsigned spare = cfg->threads > 1 ? cfg->threads - 1 : 0;
    return cfg->max_streams < spare ? cfg->max_streams : spare;
}

void api_power_stream(struct api_request *req, struct api_response *res)
{
    struct app *app = req->app;
    struct api_error e;
    if (req->query_overflow) {
        api_error_set(&e, 400, "more than %d query parameters", API_MAX_QUERY_PARAMS);
        api_respond_error(res, &e, req->path);
        return;
    }
    struct api_stream_query q;
    if (api_parse_stream_query(req->query, req->query_count, app->cfg->stream_interval_ms, &q,
                               &e) != 0) {
        api_respond_error(res, &e, req->path);
        return;
    }
    if (no_sensor(req, res))
        return;
    if (atomic_load(&app->stopping)) {
        api_error_set(&e, 503, "jetprofd is stopping");
        api_respond_error(res, &e, req->path);
        return;
    }
    unsigned cap = stream_cap(app->cfg);
    unsigned open = atomic_fetch_add(&app->streams_active, 1);
    if (open >= cap) {
        atomic_fetch_sub(&app->streams_active, 1);
        if (cap == 0)
            api_error_set(&e, 503,
                          "power streams are off: server.max_streams = %u and server.threads = "
                          "%u (a stream needs a thread of its own besides one for the API)",
                          app->cfg->max_streams, app->cfg->threads);
        else
            api_error_set(&e, 503,
                          "%u power stream%s already open, the most this server allows "
                          "(server.max_streams = %u, server.threads = %u); try again later",
                          open, open == 1 ? " is" : "s are", app->cfg->max_streams,
                          app->cfg->threads);
        api_respond_error(res, &e, req->path);
        res->retry_after_s = STREAM_RETRY_AFTER_S;
        return;
    }
    struct power_stream *ps = calloc(1, sizeof(*ps));
    if (!ps) {
        atomic_fetch_sub(&app->streams_active, 1);
        api_respond_json(res, 500, NULL);
        return;
    }
    ps->app = app;
    ps->interval_ns = (int64_t)q.interval_ms * NS_PER_MS;
    ps->remaining = q.count;
    res->status = 200;
    res->content_type = "text/event-stream";
    res->stream_read = stream_read;
    res->stream_free = stream_free;
    res->stream_ctx = ps;
    log_debug("http", "power stream opened (%u of %u): %s, %s", open + 1, cap,
              q.interval_ms ? "one event per interval" : "every sample",
              q.count ? "limited count" : "until the client leaves");
}
