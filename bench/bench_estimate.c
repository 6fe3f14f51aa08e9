/*
 * bench_estimate.c - how many graph estimates a running jetprofd answers per
 * second over HTTP (issue 6), with its prediction cache hot, cold and mixed.
 *
 * It talks to a daemon that bench/bench_estimate.sh started (sim sensor, CPU
 * executor, a scratch database, a small dataset collected and the predictors
 * trained), so on its own it only prints its usage. The client is a raw HTTP/1.1
 * connection kept alive across requests (TCP_NODELAY, request head and body in
 * one writev), so the figures are the daemon's cost plus loopback, not a
 * client library's; request bodies are built before the clock starts and
 * answers are only checked for their status (200) inside the timed loop.
 *
 * Workload: the graph of --graph (default tests/fixtures/graphs/mlp20.json, 20
 * kernels after fusion) with its "batch" changed per request, so every batch
 * value is a different set of kernel configurations for the cache:
 *   single, cache hot:  --requests per round cycling over 16 batch values,
 *                       each estimated once before the clock starts (all hits);
 *   single, cache cold: every request a batch value never sent before (misses,
 *                       apart from identical layers inside one graph);
 *   single, mixed:      batch values drawn uniformly from a pool of 512 never
 *                       primed, so rounds go from mostly misses to mostly hits,
 *                       as a search revisiting layer widths does;
 *   batch of --batch-graphs graphs in one POST ({"graphs": [...]}), hot (the
 *                       same graphs again) and cold (fresh batch values).
 * Each mode runs --rounds rounds; the figure is the median round's graphs/s,
 * with the median and p90 time per request, and the cache hit share measured
 * from /metrics (jetprof_prediction_cache_{hits,misses}_total) over the mode.
 * The last line, "result: key=value ...", is for the driver's summary.
 *
 * The client and the daemon share this machine's CPUs; on a 2-core VM they
 * compete, so quote ratios within one run.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <jansson.h>

#include "bench_machine.h"
#include "common/clock.h"

#define HOT_POOL 16
#define MIXED_POOL 512
/* Batch values: the hot pool is 32..512, the mixed pool 1000..1511, the batch
 * POSTs' hot graphs 10001.., and cold values count up from 20001, so no mode
 * warms the cache for another. */
#define HOT_STEP 32
#define MIXED_FIRST_BATCH 1000
#define BATCH_HOT_FIRST 10001
#define COLD_FIRST_BATCH 20001
#define RESPONSE_MAX_BYTES ((size_t)1024 * 1024 * 1024)

struct options {
    const char *url;
    const char *graph_path;
    unsigned requests;     /* single requests per round */
    unsigned rounds;
    unsigned batch_graphs; /* graphs per batch POST */
    unsigned batch_rounds;
    unsigned modes;        /* MODE_* bits: which modes run (--modes) */
};

/* --modes names, in the order the modes run. */
enum { MODE_HOT = 1, MODE_COLD = 2, MODE_MIXED = 4, MODE_BATCH_HOT = 8, MODE_BATCH_COLD = 16 };
static const struct {
    const char *name;
    unsigned bit;
} mode_names[] = {{"hot", MODE_HOT},
                  {"cold", MODE_COLD},
                  {"mixed", MODE_MIXED},
                  {"batch-hot", MODE_BATCH_HOT},
                  {"batch-cold", MODE_BATCH_COLD}};
#define MODE_ALL (MODE_HOT | MODE_COLD | MODE_MIXED | MODE_BATCH_HOT | MODE_BATCH_COLD)

/* ---- a keep-alive HTTP/1.1 connection ---- */

struct conn {
    char host[256], port[16];
    int fd;
    char *buf; /* bytes read and not yet consumed: buf[pos .. len) */
    size_t pos, len, cap;
};

struct answer {
    int status;
    char *body; /* malloc'd, NUL-terminated */
    size_t body_len;
};

static int conn_open(struct conn *c)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(c->host, c->port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "bench_estimate: %s:%s: %s\n", c->host, c->port, gai_strerror(rc));
        return -1;
    }
    c->fd = -1;
    for (struct addrinfo *ai = res; ai && c->fd < 0; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            close(fd);
            continue;
        }
        int one = 1;
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
            close(fd);
            continue;
        }
        c->fd = fd;
    }
    freeaddrinfo(res);
    if (c->fd < 0) {
        fprintf(stderr, "bench_estimate: cannot connect to %s:%s: %s\n", c->host, c->port,
                strerror(errno));
        return -1;
    }
    c->pos = c->len = 0;
    return 0;
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->pos = c->len = 0;
}

/* Reads more bytes into the buffer. 1 read, 0 the peer closed, -1 error. */
static int conn_fill(struct conn *c)
{
    if (c->pos > 0 && c->pos == c->len)
        c->pos = c->len = 0;
    if (c->cap - c->len < 65536) {
        if (c->pos > 0) {
            memmove(c->buf, c->buf + c->pos, c->len - c->pos);
            c->len -= c->pos;
            c->pos = 0;
        }
        if (c->cap - c->len < 65536) {
            size_t cap = c->cap ? c->cap * 2 : 262144;
            if (cap > RESPONSE_MAX_BYTES) {
                fprintf(stderr, "bench_estimate: answer larger than %zu MiB\n",
                        RESPONSE_MAX_BYTES >> 20);
                return -1;
            }
            char *p = realloc(c->buf, cap);
            if (!p) {
                fprintf(stderr, "bench_estimate: out of memory\n");
                return -1;
            }
            c->buf = p;
            c->cap = cap;
        }
    }
    for (;;) {
        ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "bench_estimate: read: %s\n", strerror(errno));
            return -1;
        }
        c->len += (size_t)n;
        return n > 0 ? 1 : 0;
    }
}

/* Index just past "\r\n" at or after from, or 0 when not buffered yet. */
static size_t find_crlf(const struct conn *c, size_t from)
{
    for (size_t i = from; i + 1 < c->len; i++)
        if (c->buf[i] == '\r' && c->buf[i + 1] == '\n')
            return i + 2;
    return 0;
}

/* Makes at least n bytes available from c->pos. 0 or -1. */
static int conn_need(struct conn *c, size_t n)
{
    while (c->len - c->pos < n) {
        int r = conn_fill(c);
        if (r <= 0) {
            if (r == 0)
                fprintf(stderr, "bench_estimate: the daemon closed the connection mid-answer\n");
            return -1;
        }
    }
    return 0;
}

/* A line from c->pos (without its CRLF) into [*start, *end); consumes it. */
static int conn_line(struct conn *c, size_t *start, size_t *end)
{
    size_t next;
    while ((next = find_crlf(c, c->pos)) == 0) {
        int r = conn_fill(c);
        if (r <= 0) {
            if (r == 0)
                fprintf(stderr, "bench_estimate: the daemon closed the connection\n");
            return -1;
        }
    }
    *start = c->pos;
    *end = next - 2;
    c->pos = next;
    return 0;
}

static int append(struct answer *a, size_t *cap, const char *p, size_t n)
{
    if (a->body_len + n + 1 > *cap) {
        size_t nc = *cap ? *cap : 4096;
        while (nc < a->body_len + n + 1)
            nc *= 2;
        char *b = realloc(a->body, nc);
        if (!b)
            return -1;
        a->body = b;
        *cap = nc;
    }
    memcpy(a->body + a->body_len, p, n);
    a->body_len += n;
    a->body[a->body_len] = '\0';
    return 0;
}

/* Reads one answer: status line, headers, a Content-Length or chunked body.
 * *close_after when the daemon said Connection: close. 0 or -1. */
static int read_answer(struct conn *c, struct answer *a, bool *close_after)
{
    size_t s, e, cap = 0;
    memset(a, 0, sizeof *a);
    *close_after = false;
    if (conn_line(c, &s, &e) != 0)
        return -1;
    if (e - s < 12 || strncmp(c->buf + s, "HTTP/1.", 7) != 0) {
        fprintf(stderr, "bench_estimate: not an HTTP answer\n");
        return -1;
    }
    a->status = atoi(c->buf + s + 9);
    long long content_length = -1;
    bool chunked = false;
    for (;;) {
        if (conn_line(c, &s, &e) != 0)
            return -1;
        if (s == e)
            break;
        const char *h = c->buf + s;
        size_t n = e - s;
        if (n > 15 && strncasecmp(h, "content-length:", 15) == 0)
            content_length = strtoll(h + 15, NULL, 10);
        else if (n > 18 && strncasecmp(h, "transfer-encoding:", 18) == 0)
            chunked = memmem(h, n, "chunked", 7) != NULL;
        else if (n > 11 && strncasecmp(h, "connection:", 11) == 0)
            *close_after = memmem(h, n, "close", 5) != NULL;
    }
    if (chunked) {
        for (;;) {
            if (conn_line(c, &s, &e) != 0)
                goto fail;
            size_t size = (size_t)strtoull(c->buf + s, NULL, 16);
            if (size == 0) {
                do { /* trailers up to the empty line */
                    if (conn_line(c, &s, &e) != 0)
                        goto fail;
                } while (s != e);
                break;
            }
            if (conn_need(c, size + 2) != 0 || append(a, &cap, c->buf + c->pos, size) != 0)
                goto fail;
            c->pos += size + 2;
        }
    } else if (content_length >= 0) {
        if (conn_need(c, (size_t)content_length) != 0 ||
            append(a, &cap, c->buf + c->pos, (size_t)content_length) != 0)
            goto fail;
        c->pos += (size_t)content_length;
    } else {
        fprintf(stderr, "bench_estimate: an answer without Content-Length or chunks\n");
        return -1;
    }
    if (!a->body && append(a, &cap, "", 0) != 0)
        goto fail;
    return 0;
fail:
    free(a->body);
    a->body = NULL;
    return -1;
}

/* Sends all of head + body with writev. 0 or -1. */
static int send_request(int fd, const char *head, size_t head_len, const char *body,
                        size_t body_len)
{
    struct iovec iov[2] = {{(void *)head, head_len}, {(void *)body, body_len}};
    int first = 0, count = body_len ? 2 : 1;
    while (first < count) {
        ssize_t w = writev(fd, iov + first, count - first);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        size_t done = (size_t)w;
        while (first < count && done >= iov[first].iov_len) {
            done -= iov[first].iov_len;
            first++;
        }
        if (first < count) {
            iov[first].iov_base = (char *)iov[first].iov_base + done;
            iov[first].iov_len -= done;
        }
    }
    return 0;
}

/* One request on the kept-alive connection; when a reused connection turns
 * out closed (the daemon's idle timeout), once more on a new one.
 * 0 with *a (free a->body), or -1. */
static int exchange(struct conn *c, const char *method, const char *path, const char *body,
                    size_t body_len, struct answer *a)
{
    char head[512];
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: %s:%s\r\nAccept: application/json\r\n"
                     "%sContent-Length: %zu\r\n\r\n",
                     method, path, c->host, c->port,
                     body ? "Content-Type: application/json\r\n" : "", body ? body_len : 0);
    if (n < 0 || (size_t)n >= sizeof head)
        return -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        bool reused = c->fd >= 0;
        if (!reused && conn_open(c) != 0)
            return -1;
        bool close_after = false;
        if (send_request(c->fd, head, (size_t)n, body, body ? body_len : 0) == 0 &&
            read_answer(c, a, &close_after) == 0) {
            if (close_after)
                conn_close(c);
            return 0;
        }
        conn_close(c);
        if (!reused)
            break;
    }
    fprintf(stderr, "bench_estimate: %s %s: no answer\n", method, path);
    return -1;
}

/* ---- the daemon's cache counters ---- */

struct cache_counters {
    double hits, misses;
};

static double metric_value(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    return -1;
}

static int read_cache_counters(struct conn *c, struct cache_counters *out)
{
    struct answer a;
    if (exchange(c, "GET", "/metrics", NULL, 0, &a) != 0)
        return -1;
    int rc = -1;
    if (a.status == 200) {
        out->hits = metric_value(a.body, "jetprof_prediction_cache_hits_total");
        out->misses = metric_value(a.body, "jetprof_prediction_cache_misses_total");
        rc = out->hits >= 0 && out->misses >= 0 ? 0 : -1;
        if (rc != 0)
            fprintf(stderr, "bench_estimate: /metrics lacks the prediction cache counters\n");
    } else {
        fprintf(stderr, "bench_estimate: GET /metrics answered %d\n", a.status);
    }
    free(a.body);
    return rc;
}

/* ---- workload ---- */

static double quantile(double *v, size_t n, double q)
{
    if (n == 0)
        return 0.0;
    qsort(v, n, sizeof *v, bench_compare_doubles);
    return v[(size_t)(q * (double)(n - 1) + 0.5)];
}

/* The graph with its batch set, serialised compactly (malloc'd). */
static char *graph_text(json_t *graph, int64_t batch)
{
    if (json_object_set_new(graph, "batch", json_integer(batch)) != 0)
        return NULL;
    return json_dumps(graph, JSON_COMPACT);
}

/* {"graphs": [graph with batches[0], ...]} (malloc'd). */
static char *batch_text(json_t *graph, const int64_t *batches, size_t n)
{
    json_t *list = json_array();
    json_t *root = list ? json_pack("{s:o}", "graphs", list) : NULL;
    if (!root)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        json_t *g = json_deep_copy(graph);
        if (!g || json_object_set_new(g, "batch", json_integer(batches[i])) != 0 ||
            json_array_append_new(list, g) != 0) {
            json_decref(g);
            json_decref(root);
            return NULL;
        }
    }
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return text;
}

struct mode_result {
    double graphs_per_s;   /* median round */
    double request_ms_p50; /* per request (per POST for batches) */
    double request_ms_p90;
    double hit_share;      /* of the cache lookups during the mode */
};

/* POSTs bodies[0..n) to path once each, in order; records each request's time
 * in ms_out (n entries). The wall time in seconds, or -1 on any non-200. */
static double post_all(struct conn *c, const char *path, char **bodies, size_t n,
                       double *ms_out)
{
    int64_t t0 = clock_mono_ns();
    for (size_t i = 0; i < n; i++) {
        int64_t r0 = clock_mono_ns();
        struct answer a;
        if (exchange(c, "POST", path, bodies[i], strlen(bodies[i]), &a) != 0)
            return -1;
        if (a.status != 200) {
            fprintf(stderr, "bench_estimate: POST %s answered %d: %.300s\n", path, a.status,
                    a.body);
            free(a.body);
            return -1;
        }
        free(a.body);
        ms_out[i] = (double)(clock_mono_ns() - r0) / 1e6;
    }
    return (double)(clock_mono_ns() - t0) / 1e9;
}

static void free_bodies(char **bodies, size_t n)
{
    if (!bodies)
        return;
    for (size_t i = 0; i < n; i++)
        free(bodies[i]);
    free(bodies);
}

/*
 * Runs rounds of requests; next_batch(state) gives the batch value of each
 * graph. graphs_per_request 1: single graphs; more: one batch POST each.
 * prime: one unmeasured pass over the same bodies first (the hot modes).
 */
typedef int64_t (*batch_gen)(void *state, size_t round, size_t i);

static int run_mode(struct conn *c, json_t *graph, const char *label, unsigned rounds,
                    unsigned requests, unsigned graphs_per_request, bool prime, batch_gen gen,
                    void *state, struct mode_result *out)
{
    double *round_rate = calloc(rounds, sizeof *round_rate);
    double *ms = calloc((size_t)rounds * requests, sizeof *ms);
    int64_t *batches = calloc(graphs_per_request, sizeof *batches);
    char **bodies = NULL;
    int rc = -1;
    if (!round_rate || !ms || !batches) {
        fprintf(stderr, "bench_estimate: out of memory\n");
        goto out;
    }
    struct cache_counters before, after;
    bool counted = false;
    for (unsigned r = 0; r < rounds + (prime ? 1u : 0u); r++) {
        bool priming = prime && r == 0;
        unsigned round = prime ? r - (r > 0) : r;
        bodies = calloc(requests, sizeof *bodies);
        if (!bodies)
            goto out;
        for (unsigned i = 0; i < requests; i++) {
            for (unsigned g = 0; g < graphs_per_request; g++)
                batches[g] = gen(state, round, (size_t)i * graphs_per_request + g);
            bodies[i] = graphs_per_request == 1 ? graph_text(graph, batches[0])
                                                : batch_text(graph, batches, graphs_per_request);
            if (!bodies[i]) {
                fprintf(stderr, "bench_estimate: out of memory building requests\n");
                goto out;
            }
        }
        if (!priming && !counted) {
            if (read_cache_counters(c, &before) != 0)
                goto out;
            counted = true;
        }
        double *rec = priming ? NULL : ms + (size_t)round * requests;
        double *scratch = priming ? calloc(requests, sizeof *scratch) : NULL;
        double wall = -1;
        if (!priming || scratch)
            wall = post_all(c, "/v1/estimate", bodies, requests, priming ? scratch : rec);
        free(scratch);
        free_bodies(bodies, requests);
        bodies = NULL;
        if (wall < 0)
            goto out;
        if (!priming)
            round_rate[round] = (double)requests * graphs_per_request / wall;
    }
    if (read_cache_counters(c, &after) != 0)
        goto out;
    double lookups = (after.hits - before.hits) + (after.misses - before.misses);
    out->hit_share = lookups > 0 ? (after.hits - before.hits) / lookups : 0;
    out->graphs_per_s = quantile(round_rate, rounds, 0.5);
    out->request_ms_p50 = quantile(ms, (size_t)rounds * requests, 0.5);
    out->request_ms_p90 = quantile(ms, (size_t)rounds * requests, 0.9);
    printf("  %-22s %10.1f graphs/s (rounds:", label, out->graphs_per_s);
    for (unsigned r = 0; r < rounds; r++)
        printf(" %.0f", round_rate[r]);
    printf("), per %s median %.3f ms, p90 %.3f ms; cache hits %.1f %% of %.0f lookups\n",
           graphs_per_request == 1 ? "request" : "POST", out->request_ms_p50,
           out->request_ms_p90, out->hit_share * 100, lookups);
    rc = 0;
out:
    free_bodies(bodies, requests);
    free(round_rate);
    free(ms);
    free(batches);
    return rc;
}

/* The batch generators. */
struct gen_state {
    int64_t next_cold;     /* the next never-used batch value */
    uint64_t rng;          /* xorshift64 state for the mixed pool */
    int64_t pool_base;
};

static int64_t gen_hot(void *state, size_t round, size_t i)
{
    (void)state;
    (void)round;
    return HOT_STEP + (int64_t)(i % HOT_POOL) * HOT_STEP; /* 32, 64, ..., 512 */
}

static int64_t gen_cold(void *state, size_t round, size_t i)
{
    (void)round;
    (void)i;
    struct gen_state *g = state;
    return g->next_cold++;
}

static int64_t gen_mixed(void *state, size_t round, size_t i)
{
    (void)round;
    (void)i;
    struct gen_state *g = state;
    g->rng ^= g->rng << 13;
    g->rng ^= g->rng >> 7;
    g->rng ^= g->rng << 17;
    return g->pool_base + (int64_t)(g->rng % MIXED_POOL);
}

/* The batch POST's hot mode: the same graphs every round. */
static int64_t gen_batch_hot(void *state, size_t round, size_t i)
{
    (void)state;
    (void)round;
    return BATCH_HOT_FIRST + (int64_t)i;
}

/* ---- main ---- */

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_estimate --url http://127.0.0.1:PORT [--graph FILE] [--requests N]\n"
               "                      [--rounds R] [--batch-graphs N] [--batch-rounds R]\n"
               "                      [--modes hot,cold,mixed,batch-hot,batch-cold]\n"
               "--modes runs only the modes named (all by default; the driver's summary needs\n"
               "all), e.g. --modes hot while profiling the daemon.\n"
               "Normally run by bench/bench_estimate.sh (make bench), which starts jetprofd,\n"
               "collects a dataset and trains the predictors first.\n");
}

/* "hot,batch-cold" into MODE_* bits. 0 or -1. */
static int parse_modes(const char *s, unsigned *out)
{
    *out = 0;
    while (*s) {
        size_t n = strcspn(s, ",");
        size_t i = 0;
        while (i < sizeof mode_names / sizeof mode_names[0] &&
               !(strlen(mode_names[i].name) == n && strncmp(mode_names[i].name, s, n) == 0))
            i++;
        if (i == sizeof mode_names / sizeof mode_names[0])
            return -1;
        *out |= mode_names[i].bit;
        s += n + (s[n] == ',');
    }
    return *out ? 0 : -1;
}

static int parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = (unsigned)v;
    return 0;
}

/* "http://HOST:PORT" (trailing slash allowed) into c->host and c->port. */
static int parse_url(const char *url, struct conn *c)
{
    const char *p = strncmp(url, "http://", 7) == 0 ? url + 7 : url;
    const char *colon = strrchr(p, ':');
    if (!colon || colon == p || (size_t)(colon - p) >= sizeof c->host)
        return -1;
    snprintf(c->host, sizeof c->host, "%.*s", (int)(colon - p), p);
    snprintf(c->port, sizeof c->port, "%.*s", (int)strcspn(colon + 1, "/"), colon + 1);
    return c->port[0] ? 0 : -1;
}

int main(int argc, char **argv)
{
    struct options o = {.graph_path = "tests/fixtures/graphs/mlp20.json",
                        .requests = 500,
                        .rounds = 5,
                        .batch_graphs = 1000,
                        .batch_rounds = 5,
                        .modes = MODE_ALL};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--url") == 0 && v) {
            o.url = v;
        } else if (strcmp(a, "--graph") == 0 && v) {
            o.graph_path = v;
        } else if (strcmp(a, "--requests") == 0 && v) {
            bad = parse_uint(v, 1, 1000000, &o.requests);
        } else if (strcmp(a, "--rounds") == 0 && v) {
            bad = parse_uint(v, 1, 1000, &o.rounds);
        } else if (strcmp(a, "--batch-graphs") == 0 && v) {
            bad = parse_uint(v, 1, 10000, &o.batch_graphs);
        } else if (strcmp(a, "--batch-rounds") == 0 && v) {
            bad = parse_uint(v, 1, 1000, &o.batch_rounds);
        } else if (strcmp(a, "--modes") == 0 && v) {
            bad = parse_modes(v, &o.modes);
        } else {
            usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "bench_estimate: bad value '%s' for %s\n", v, a);
            return 2;
        }
        i++;
    }
    if (!o.url) {
        usage(stderr);
        return 2;
    }

    struct conn c = {.fd = -1};
    if (parse_url(o.url, &c) != 0) {
        fprintf(stderr, "bench_estimate: --url wants http://HOST:PORT, got '%s'\n", o.url);
        return 2;
    }
    json_error_t jerr;
    json_t *graph = json_load_file(o.graph_path, 0, &jerr);
    if (!json_is_object(graph) || !json_is_integer(json_object_get(graph, "batch"))) {
        fprintf(stderr, "bench_estimate: %s: %s\n", o.graph_path,
                graph ? "not a native graph with an integer \"batch\"" : jerr.text);
        json_decref(graph);
        return 1;
    }
    int rc = 1;
    char *probe = NULL;
    struct answer a = {0};

    bench_print_machine();
    /* one estimate first: the graph's size and that the daemon can answer it */
    probe = graph_text(graph, 64);
    if (!probe || exchange(&c, "POST", "/v1/estimate", probe, strlen(probe), &a) != 0)
        goto out;
    json_t *est = json_loadb(a.body, a.body_len, 0, NULL);
    if (a.status != 200 || !json_is_object(est)) {
        fprintf(stderr, "bench_estimate: POST /v1/estimate answered %d: %.400s\n", a.status,
                a.body);
        json_decref(est);
        goto out;
    }
    printf("bench_estimate: %s, %" JSON_INTEGER_FORMAT " graph nodes -> %zu kernels "
           "(merge on), %zu bytes per graph; jetprofd at %s (%ssimulated models)\n",
           o.graph_path, json_integer_value(json_object_get(est, "graph_nodes")),
           json_array_size(json_object_get(est, "kernels")), strlen(probe), o.url,
           json_is_true(json_object_get(est, "simulated")) ? "" : "not ");
    json_decref(est);

    struct gen_state gs = {.next_cold = COLD_FIRST_BATCH, .rng = 0x9e3779b97f4a7c15ull,
                           .pool_base = MIXED_FIRST_BATCH};
    struct mode_result hot = {0}, cold = {0}, mixed = {0}, bhot = {0}, bcold = {0};
    if (o.modes & (MODE_HOT | MODE_COLD | MODE_MIXED))
        printf("single graphs, one POST /v1/estimate each on a kept-alive connection, %u per "
               "round, %u rounds:\n",
               o.requests, o.rounds);
    if (((o.modes & MODE_HOT) &&
         run_mode(&c, graph, "cache hot", o.rounds, o.requests, 1, true, gen_hot, &gs, &hot)) ||
        ((o.modes & MODE_COLD) &&
         run_mode(&c, graph, "cache cold", o.rounds, o.requests, 1, false, gen_cold, &gs,
                  &cold)) ||
        ((o.modes & MODE_MIXED) && run_mode(&c, graph, "mixed (pool of 512)", o.rounds,
                                            o.requests, 1, false, gen_mixed, &gs, &mixed)))
        goto out;
    if (o.modes & (MODE_BATCH_HOT | MODE_BATCH_COLD))
        printf("batches: %u graphs in one POST /v1/estimate {\"graphs\": [...]}, %u rounds:\n",
               o.batch_graphs, o.batch_rounds);
    if (((o.modes & MODE_BATCH_HOT) && run_mode(&c, graph, "batch, cache hot", o.batch_rounds, 1,
                                                 o.batch_graphs, true, gen_batch_hot, &gs,
                                                 &bhot)) ||
        ((o.modes & MODE_BATCH_COLD) && run_mode(&c, graph, "batch, cache cold", o.batch_rounds,
                                                 1, o.batch_graphs, false, gen_cold, &gs,
                                                 &bcold)))
        goto out;
    if (o.modes == MODE_ALL)
        printf("result: single_hot_graphs_per_s=%.1f single_cold_graphs_per_s=%.1f "
               "single_mixed_graphs_per_s=%.1f batch_hot_graphs_per_s=%.1f "
               "batch_cold_graphs_per_s=%.1f batch_graphs=%u\n",
               hot.graphs_per_s, cold.graphs_per_s, mixed.graphs_per_s, bhot.graphs_per_s,
               bcold.graphs_per_s, o.batch_graphs);
    rc = 0;
out:
    free(a.body);
    free(probe);
    json_decref(graph);
    conn_close(&c);
    free(c.buf);
    return rc;
}
