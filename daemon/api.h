/*
 * api.h - the inside of jetprofd's HTTP API: what http.c hands a handler, what a
 * handler hands back, the route table, and the helpers every api_<resource>.c
 * shares (problem+json errors, query parameters, the kernel-config parser).
 *
 * Handlers never see libmicrohttpd: http.c collects the method, the path, the
 * {id} segment, the query parameters and the parsed JSON body into an
 * api_request, calls the route's handler, and turns the api_response into an
 * HTTP response. The one exception is waiting for a job (POST /v1/measure):
 * api_wait_for_job() suspends the connection, and http.c calls the handler a
 * second time with `resumed` set once the runner has finished the job.
 *
 * Not a public interface of the daemon (main.c uses http.h); exposed so that
 * tests/unit/test_daemon_api.c can test the pure parts without a network.
 */
#ifndef JETPROF_API_H
#define JETPROF_API_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "../common/text.h"
#include "../cudakern/catalog.h"
#include "../cudakern/exec.h"
#include "../db/db.h"
#include "app.h"

/* Guards app->device and app->device_id, which PUT /v1/sensor/sampling replaces
 * while GET /v1/device reads them (defined in api_device.c). */
extern pthread_mutex_t api_device_lock;

/* ---- errors: RFC 9457 problem details ---- */

#define API_DETAIL_MAX 640

/* A failure on its way to becoming a problem+json response. */
struct api_error {
    unsigned status; /* 400, 404, 422, 500, ...; 0 = no error */
    char detail[API_DETAIL_MAX];
    char parameter[64]; /* problem member "parameter" when not empty */
    int line, column;   /* problem members "line"/"column" when line > 0 */
};

/* Sets status and a printf-formatted detail; clears the other members. */
void api_error_set(struct api_error *e, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sets e->parameter (truncated at a UTF-8 character boundary). */
void api_error_param(struct api_error *e, const char *name);

/* Bytes a client sent are quoted for messages and log lines with text_quote
 * (common/text.h). */

/* The reason phrase of an HTTP status ("Unprocessable Entity"), as the status
 * line carries it; "Unknown" for codes HTTP does not define. */
const char *api_reason_phrase(unsigned status);

/* {"type":"about:blank","title":<reason>,"status":N,"detail":..,"instance":..}
 * plus "parameter", "line"/"column" from e. NULL only when out of memory. */
json_t *api_problem_json(const struct api_error *e, const char *instance);

/* ---- requests and responses ---- */

struct api_query_param {
    const char *key;
    const char *value; /* "" for "?key" without '=' */
};
#define API_MAX_QUERY_PARAMS 32

struct http_request; /* http.c's per-request state, opaque to handlers */

struct api_request {
    struct app *app;
    const char *method; /* "GET", "POST"; HEAD arrives as "GET" */
    const char *path;   /* "/v1/measurements/12" (no query string; text_quote'd) */
    const char *id;     /* the {id} segment of the route, or NULL */
    const struct api_query_param *query;
    size_t query_count;
    bool query_overflow; /* more than API_MAX_QUERY_PARAMS were sent */
    json_t *body;        /* parsed JSON body (routes with API_BODY_JSON), borrowed */
    /* Set on the second call after a wait (api_wait_for_job). */
    bool resumed;
    int64_t wait_job_id;
    enum db_job_state wait_state; /* DONE, FAILED, CANCELED, or QUEUED = daemon stopping */
    struct http_request *http;
    /* Set on the second call after api_defer(): the ctx given to it. wait_state is
     * DB_JOB_DONE when api_deferred_resume() woke the request, DB_JOB_QUEUED when
     * the server stopped first. */
    void *deferred_ctx;
};

/*
 * A streamed body (GET /v1/power/stream): http.c sends it chunked, calling read
 * whenever the client can take more. read fills buf with at most max bytes and
 * returns how many (> 0), API_STREAM_END when the body is complete or
 * API_STREAM_ERROR to abort the connection; it runs on an HTTP pool thread and
 * may block briefly, but must never return 0 (that would spin). free releases
 * ctx once the response is done with (always called exactly once, also when
 * the response could not be sent). The signatures are libmicrohttpd's.
 */
typedef ssize_t (*api_stream_read_fn)(void *ctx, uint64_t pos, char *buf, size_t max);
typedef void (*api_stream_free_fn)(void *ctx);
#define API_STREAM_END ((ssize_t)-1)
#define API_STREAM_ERROR ((ssize_t)-2)
#define API_STREAM_BLOCK_BYTES 4096u

struct api_response {
    unsigned status;
    json_t *json; /* body as JSON (owned; http.c frees it), or */
    char *text;   /* a malloc'd non-JSON body (owned) with */
    size_t text_len;
    const char *content_type; /* default "application/json"; problems set their own */
    char location[96];        /* "Location" header when not empty */
    unsigned retry_after_s;   /* "Retry-After" header when > 0 */
    char content_disposition[128]; /* "Content-Disposition" header when not empty */
    bool suspended;           /* set by api_wait_for_job: answer comes later */
    /* A streamed body instead of json/text (owned: http.c calls stream_free). */
    api_stream_read_fn stream_read;
    api_stream_free_fn stream_free;
    void *stream_ctx;
};

/* Fills res with the problem for e (status e->status, application/problem+json). */
void api_respond_error(struct api_response *res, const struct api_error *e, const char *instance);
/* Same, with an extra integer member (e.g. "job_id"). */
void api_respond_error_with_id(struct api_response *res, const struct api_error *e,
                               const char *instance, const char *member, int64_t value);
/* Fills res with status and json (reference stolen; NULL = out of memory -> 500). */
void api_respond_json(struct api_response *res, unsigned status, json_t *json);

/* ---- waiting for a job (http.c) ---- */

enum api_wait_result {
    API_WAIT_SUSPENDED, /* the handler returns now; it is called again with resumed */
    API_WAIT_FINISHED,  /* the job finished already (or the server is stopping):
                           req->wait_state says how; answer now */
};
/* Registers a runner waiter for job_id and suspends the connection. Sets
 * res->suspended when it does. */
enum api_wait_result api_wait_for_job(struct api_request *req, struct api_response *res,
                                      int64_t job_id);

/*
 * Answering later, for work that is not a job (training, on the runner thread
 * between jobs): api_defer() suspends the connection and returns a handle;
 * whoever finishes the work calls api_deferred_resume() once, from any thread,
 * and http.c calls the handler again with `resumed` set and req->deferred_ctx =
 * ctx. The request owns ctx from a successful api_defer() on: ctx_release(ctx)
 * is called exactly once when the request ends, whether or not the handler ran
 * again (a client that went away, the server stopping). NULL when the request
 * cannot wait (the server is stopping, no HTTP connection as in unit tests):
 * the handler answers now and keeps ctx. Sets res->suspended on success.
 */
struct api_deferred;
struct api_deferred *api_defer(struct api_request *req, struct api_response *res, void *ctx,
                               void (*ctx_release)(void *ctx));
/* Wakes the request (if it is still there) and gives up the handle. NULL is a no-op. */
void api_deferred_resume(struct api_deferred *d);

/* ---- routes ---- */

typedef void (*api_handler_fn)(struct api_request *req, struct api_response *res);

enum api_body {
    API_BODY_NONE, /* any body is read and dropped */
    API_BODY_JSON, /* required, parsed with JSON_REJECT_DUPLICATES */
    API_BODY_JSON_OPTIONAL, /* as API_BODY_JSON, but an empty body is allowed (body NULL) */
};

struct api_route {
    const char *method;
    const char *pattern; /* "/v1/measurements/{id}": "{id}" matches one non-empty segment */
    api_handler_fn handler;
    bool mutating; /* needs the bearer token when one is configured */
    enum api_body body;
};

extern const struct api_route api_routes[];
extern const size_t api_route_count;

enum api_match {
    API_MATCH_OK,
    API_MATCH_NOT_FOUND,  /* no route has this path: 404 */
    API_MATCH_BAD_METHOD, /* the path exists with other methods: 405 + Allow */
};
/*
 * Finds the route for method and path. HEAD matches GET routes. On OK *route is
 * set and the {id} segment, if any, is copied into id (idlen bytes; a longer
 * segment is still matched and truncated, so handlers reject it as not an
 * integer). On BAD_METHOD allow receives "GET, HEAD" / "POST" etc.
 */
enum api_match api_route_match(const char *method, const char *path, const struct api_route **route,
                               char *id, size_t idlen, char *allow, size_t allowlen);

/* Constant-time check of an Authorization header value against the token:
 * true for "Bearer <token>" (scheme case-insensitive). */
bool api_bearer_ok(const char *authorization, const char *token);

/* The handlers (one file per resource). */
void api_health_get(struct api_request *req, struct api_response *res);
void api_device_get(struct api_request *req, struct api_response *res);
void api_kernels_get(struct api_request *req, struct api_response *res);
void api_measure_post(struct api_request *req, struct api_response *res);
void api_measurements_list(struct api_request *req, struct api_response *res);
void api_measurements_get(struct api_request *req, struct api_response *res);
void api_power_get(struct api_request *req, struct api_response *res);
void api_power_stream(struct api_request *req, struct api_response *res);
void api_sensor_sampling_put(struct api_request *req, struct api_response *res);
void api_metrics_get(struct api_request *req, struct api_response *res);
void api_jobs_post(struct api_request *req, struct api_response *res);
void api_jobs_list(struct api_request *req, struct api_response *res);
void api_jobs_get(struct api_request *req, struct api_response *res);
void api_jobs_delete(struct api_request *req, struct api_response *res);
void api_batches_get(struct api_request *req, struct api_response *res);
void api_batches_delete(struct api_request *req, struct api_response *res);
void api_export_sqlite(struct api_request *req, struct api_response *res);
void api_models_train(struct api_request *req, struct api_response *res);   /* api_models.c */
void api_models_list(struct api_request *req, struct api_response *res);
void api_models_export(struct api_request *req, struct api_response *res);
void api_predict_post(struct api_request *req, struct api_response *res);   /* api_predict.c */
void api_estimate_post(struct api_request *req, struct api_response *res);  /* api_estimate.c */
void api_graphs_measure(struct api_request *req, struct api_response *res); /* api_graphs.c */
void api_graphs_list(struct api_request *req, struct api_response *res);
void api_validation_get(struct api_request *req, struct api_response *res); /* api_validation.c */

/* A graph the graph module refused (predict/graph.h) as a problem: its status
 * (422, or 400 when not a graph at all), the detail prefixed "graphs[i]: " when
 * graph_index >= 0, members "node" (when named) and "graph" (the index). */
struct graph_error;
void api_respond_graph_error(struct api_request *req, struct api_response *res,
                             const struct graph_error *ge, long graph_index);
/* predict.max_graph_nodes, or the graph module's default without a configuration. */
unsigned api_max_graph_nodes(const struct app *app);

/* The newest models of devices like app->device_id, read with db into a new
 * model_set (rails from app->sensor, simulated from app->device) that replaces
 * app->models' set; no models gives an empty state. A model whose blob does not
 * load is skipped with a warning. At start (main.c) and after every training.
 * *loaded (may be NULL) = models in the new set. 0, or -1 with err (nothing
 * replaced). */
int api_models_load(struct app *app, struct db *db, size_t *loaded, char *err, size_t errlen);

/* ---- pure parts, exposed for tests ---- */

/*
 * The body of POST /v1/measure -> a validated kernel_config. *repeats is 0 when
 * the body has none (the daemon's default). mem_free_bytes is the executor's free
 * memory (0 = no limit). 0, or -1 with e filled (422, "parameter" naming the
 * offending member).
 */
int api_parse_kernel_config(json_t *body, uint64_t mem_free_bytes, struct kernel_config *cfg,
                            unsigned *repeats, struct api_error *e);

/*
 * The memory check of POST /v1/measure: what ex really allocates for cfg
 * (exec_memory_needed) against what it has free now (exec_memory_free, read
 * fresh). 0 when it fits or the free figure cannot be read (the runner checks
 * again before it prepares), or -1 with e = 422 giving both figures and naming
 * the executor (executor_name, e.g. "cpu"). Thread-safe.
 */
int api_check_memory(struct executor *ex, const char *executor_name,
                     const struct kernel_config *cfg, struct api_error *e);

/*
 * A request body jansson refused -> e. A number too large to represent
 * (json_error_numeric_overflow: an integer beyond int64, a real beyond double)
 * is valid JSON, so it is a 422 saying the number is out of range, with the
 * line and column where the number starts and, when the number is an object
 * member's value, the member in "parameter". Anything else is a 400 "invalid
 * JSON at line L, column C: <parser message>". body/len are the bytes parsed.
 */
void api_json_error(const char *body, size_t len, const json_error_t *jerr, struct api_error *e);

/* {"batch":64,"in":256,"out":512}, in catalogue order. Length or -1 if it does
 * not fit. */
int api_params_json(const struct kernel_config *cfg, char *buf, size_t buflen);

/* Training, shared by POST /v1/models/train (api_models.c) and the adaptive
 * sampling rounds (rounds.c): the predict.train_* keys as train_options, and
 * a stored measurement as a trainset row. */
struct train_options;
struct trainset_row;
void api_train_options(const struct config *cfg, struct train_options *opt);
void api_training_row(const struct db_training_row *in, struct trainset_row *out);

/* GET /v1/measurements query parameters. */
struct api_measurement_query {
    struct db_measurement_filter filter; /* kernel/dtype/quality point into the query;
                                            since points to since below */
    bool csv;
    bool jsonl;       /* format=jsonl: one Measurement object per line */
    bool limit_given; /* jsonl and csv stream every matching row unless limit is given */
    char since[32];   /* ?since= normalised to "YYYY-MM-DDTHH:MM:SS.mmmZ" */
};
/* An ISO-8601 time (YYYY-MM-DD, or YYYY-MM-DDTHH:MM[:SS[.fff]] with Z, +HH:MM or
 * -HH:MM; no zone = UTC) as the database writes created_at, in UTC with
 * milliseconds (a finer fraction rounds up, so ">=" keeps its meaning).
 * 0, or -1 when it is not such a time. */
int api_parse_iso8601(const char *s, char *out, size_t outlen);
/* 0, or -1 with e (400, "parameter" naming the query parameter). */
int api_parse_measurement_query(const struct api_query_param *q, size_t n,
                                struct api_measurement_query *out, struct api_error *e);

/* "127.0.0.1:9740", "[::1]:0", "localhost:9740" -> host and port text.
 * 0, or -1 with err saying what is wrong with the address. */
int http_parse_listen(const char *listen, char *host, size_t hostlen, char *port, size_t portlen,
                      char *err, size_t errlen);

/* ---- power, sampling and metrics: pure parts (api_power.c, api_sensor.c,
 * api_metrics.c) ---- */

/*
 * One sample as the API shows it: {"t_ns":..,"age_ms":..,"rails":[{"name",
 * "board_input","voltage_mv","current_ma","power_mw"},..]} for the rails of s;
 * age_ms is now_ns - t_ns. NULL only when out of memory.
 */
json_t *api_power_sample_json(const struct sensor *s, const struct sensor_sample *smp,
                              int64_t now_ns);

/* GET /v1/power/stream query: ?count=N (1..1000000; 0 = endless) and
 * ?interval_ms=M (0..60000; default: sensor.stream_interval_ms). */
struct api_stream_query {
    uint64_t count;
    unsigned interval_ms;
};
/* 0, or -1 with e (400, "parameter" naming the query parameter). */
int api_parse_stream_query(const struct api_query_param *q, size_t n, unsigned default_interval_ms,
                           struct api_stream_query *out, struct api_error *e);

/*
 * The body of PUT /v1/sensor/sampling -> a sampling request (zero = leave as
 * found): "conversion_time_us" (bus and shunt, one of the INA3221's conversion
 * times), "averaging" (one of its averaging counts), "period_us" (100..1000000).
 * At least one member. 0, or -1 with e (422 naming the member and the allowed
 * values).
 */
int api_parse_sampling_request(json_t *body, struct sensor_sampling *req, struct api_error *e);

/* A Prometheus label value escaped (\ \" \n), cut to fit outlen. */
void api_prom_escape(const char *in, char *out, size_t outlen);

/* Strict decimal int64: optional '-', digits only, no overflow. 0 or -1. */
int api_parse_int64(const char *s, int64_t *out);

#endif
