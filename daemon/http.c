/*
 * http.c - jetprofd's HTTP server on libmicrohttpd: listening, the access
 * handler (per-request state, body limits, routing, auth, JSON parsing), the
 * route table, responses and problem+json errors, the access log, and
 * suspend/resume for requests that wait for a job (POST /v1/measure).
 *
 * How a request flows: MHD calls on_access() first with the headers only. We
 * match the route and decide everything that needs no body (404, 405, 401 and a
 * Content-Length over the limit, 413); such a request is answered at once when
 * the client waits for "100 Continue", otherwise its body is drained without
 * being stored and the problem is sent at the end, so the client reads a clean
 * answer instead of a reset. Bodies of JSON routes are accumulated up to
 * server.max_body_bytes. On the final call the handler runs and its
 * api_response becomes the HTTP response.
 *
 * Waiting for a job: the handler calls api_wait_for_job(), which registers a
 * runner_waiter and suspends the connection; the runner thread's callback
 * records the outcome and resumes it; MHD then calls on_access() again and the
 * handler answers. A per-request mutex orders suspend before resume, because
 * MHD forbids resuming a connection that is not suspended and the callback may
 * fire before the handler gets to suspend. Every waiting request is also in the
 * server's list so http_stop() can answer any that is left (503) before MHD
 * stops, since MHD refuses to stop with suspended connections.
 *
 * Auth: mutating routes need "Authorization: Bearer <token>" when a token is
 * configured; with server.auth_reads every route does except GET /v1/health
 * (liveness probes carry no secret). The token and auth_reads live in the
 * server under auth_lock, because SIGHUP replaces them while requests run
 * (http_set_auth); a request compares under the lock, so no copy of the secret
 * outlives it. The comparison takes the same time wherever the tokens differ.
 */
#include "http.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "../common/clock.h"
#include "../common/log.h"
#include "api.h"
#include "json_body.h"

#define HTTP_CONNECTION_TIMEOUT_S 60u
/* How long http_stop() gives waiting requests to be answered before MHD stops. */
#define HTTP_STOP_GRACE_NS (2LL * 1000000000LL)
#define HTTP_STOP_FORCE_NS (4LL * 1000000000LL)

struct http_server {
    struct app *app;
    struct MHD_Daemon *mhd;
    pthread_mutex_t lock; /* guards stopping and the waiting list */
    pthread_cond_t changed;
    bool stopping;
    struct http_request *waiting; /* requests registered with the runner */
    /* auth, replaced by SIGHUP (http_set_auth) */
    pthread_mutex_t auth_lock;
    char token[HTTP_TOKEN_MAX]; /* "" = auth off */
    bool auth_reads;
};
_Static_assert(sizeof(((struct app *)0)->token) == HTTP_TOKEN_MAX,
               "http.h HTTP_TOKEN_MAX must equal the size of app.h's token");

struct http_request {
    struct http_server *srv;
    struct MHD_Connection *conn;
    int64_t start_ns;
    char method[16];
    char *path;          /* as MHD decoded it: routing */
    char path_safe[256]; /* quoted (text_quote): messages, instance, the log */
    const struct api_route *route;
    char id[64];
    /* A problem decided before the handler runs (404, 405, 401, 413): the body
     * is drained and this is the answer. */
    struct api_error early;
    char allow[64];
    char *body;
    size_t body_len, body_cap;
    uint64_t body_seen;
    json_t *parsed; /* the body as JSON, released with the request: after the answer went out */
    unsigned status; /* the status queued, for the access log */
    bool responded;
    /* waiting for a job: lock orders suspend before resume */
    pthread_mutex_t lock;
    bool waiter_added, in_list, suspended, finished, was_suspended;
    enum db_job_state final_state;
    int64_t job_id;
    struct runner_waiter waiter;
    struct http_request *prev, *next;
    /* answering later (api_defer): the handle shared with the resumer, and the
     * handler's context, released when the request ends */
    struct api_deferred *deferred;
    void *deferred_ctx;
    void (*deferred_release)(void *ctx);
};

/* api_defer's handle: one reference for the request, one for the resumer; r is
 * cleared under the lock when the request goes, so a late resume touches nothing. */
struct api_deferred {
    pthread_mutex_t lock;
    unsigned refs;
    struct http_request *r;
};

/* The route table is in routes.c. */

/* Does path match pattern? "{id}" matches one non-empty segment, copied to id. */
static bool pattern_match(const char *pattern, const char *path, char *id, size_t idlen)
{
    const char *p = pattern, *s = path;
    while (*p) {
        if (strncmp(p, "{id}", 4) == 0) {
            size_t n = strcspn(s, "/");
            if (n == 0)
                return false;
            if (id && idlen > 0) {
                size_t c = n < idlen - 1 ? n : idlen - 1;
                memcpy(id, s, c);
                id[c] = '\0';
            }
            p += 4;
            s += n;
            continue;
        }
        if (*p != *s)
            return false;
        p++;
        s++;
    }
    return *s == '\0';
}

static void append(char *buf, size_t buflen, const char *text)
{
    size_t used = strlen(buf);
    if (used < buflen)
        snprintf(buf + used, buflen - used, "%s", text);
}

enum api_match api_route_match(const char *method, const char *path, const struct api_route **route,
                               char *id, size_t idlen, char *allow, size_t allowlen)
{
    bool path_known = false;
    const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;
    if (allow && allowlen)
        allow[0] = '\0';
    if (id && idlen)
        id[0] = '\0';
    for (size_t i = 0; i < api_route_count; i++) {
        const struct api_route *r = &api_routes[i];
        char seg[64] = ""; /* stays empty for patterns without "{id}" */
        if (!pattern_match(r->pattern, path, seg, sizeof(seg)))
            continue;
        if (strcmp(r->method, m) == 0) {
            *route = r;
            if (id && idlen)
                snprintf(id, idlen, "%s", seg);
            return API_MATCH_OK;
        }
        if (allow && allowlen) {
            if (path_known)
                append(allow, allowlen, ", ");
            append(allow, allowlen, r->method);
            if (strcmp(r->method, "GET") == 0)
                append(allow, allowlen, ", HEAD");
        }
        path_known = true;
    }
    *route = NULL;
    return path_known ? API_MATCH_BAD_METHOD : API_MATCH_NOT_FOUND;
}

/* ---- auth ---- */

bool api_bearer_ok(const char *authorization, const char *token)
{
    if (!authorization || !token || !token[0])
        return false;
    while (*authorization == ' ')
        authorization++;
    if (strncasecmp(authorization, "Bearer ", 7) != 0)
        return false;
    const char *given = authorization + 7;
    while (*given == ' ')
        given++;
    size_t glen = strlen(given), tlen = strlen(token);
    /* Time depends on the length the client sent, never on where it differs. */
    volatile unsigned char diff = (unsigned char)(glen != tlen);
    for (size_t i = 0; i < glen; i++)
        diff |= (unsigned char)(given[i] ^ token[i < tlen ? i : 0]);
    return diff == 0;
}

bool http_route_needs_token(const struct api_route *route, bool auth_reads)
{
    if (!route)
        return false;
    if (route->mutating)
        return true;
    /* Liveness probes (a load balancer, a supervisor) get no secret; health says
     * only whether the daemon works, its version, uptime and job counts. */
    return auth_reads && !(strcmp(route->method, "GET") == 0 &&
                           strcmp(route->pattern, "/v1/health") == 0);
}

void http_set_auth(struct http_server *srv, const char *token, bool auth_reads)
{
    if (!srv)
        return;
    pthread_mutex_lock(&srv->auth_lock);
    explicit_bzero(srv->token, sizeof(srv->token));
    snprintf(srv->token, sizeof(srv->token), "%s", token ? token : "");
    srv->auth_reads = auth_reads;
    pthread_mutex_unlock(&srv->auth_lock);
}

static bool token_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

int http_token_read(const char *path, char *token, size_t toklen, char *warn, size_t warnlen,
                    char *err, size_t errlen)
{
    if (warnlen)
        warn[0] = '\0';
    if (toklen < 2) {
        snprintf(err, errlen, "no room for a token");
        return -1;
    }
    /* O_NONBLOCK: a FIFO at path must not hang start-up (fstat refuses it below) */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        snprintf(err, errlen, "cannot read token file %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "token file %s is not a regular file", path);
        close(fd);
        return -1;
    }
    char buf[1024];
    size_t used = 0;
    for (;;) {
        ssize_t n = read(fd, buf + used, sizeof(buf) - 1 - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "cannot read token file %s: %s", path, strerror(errno));
            close(fd);
            explicit_bzero(buf, sizeof(buf));
            return -1;
        }
        used += (size_t)n;
        if (n == 0 || used == sizeof(buf) - 1)
            break;
    }
    close(fd);
    buf[used] = '\0';
    char *start = buf;
    size_t len = used;
    while (len > 0 && token_space(*start)) {
        start++;
        len--;
    }
    while (len > 0 && token_space(start[len - 1]))
        len--;
    bool printable = true;
    for (size_t i = 0; i < len; i++)
        if (start[i] < 0x21 || start[i] > 0x7e) /* also a NUL inside the file */
            printable = false;
    int rc = -1;
    if (used == sizeof(buf) - 1 || len >= toklen)
        snprintf(err, errlen, "the token in %s is longer than %zu characters", path, toklen - 1);
    else if (len == 0)
        snprintf(err, errlen, "token file %s is empty (it must hold the bearer token)", path);
    else if (!printable)
        snprintf(err, errlen,
                 "the token in %s must be one word of printable ASCII characters (no spaces "
                 "or control characters)",
                 path);
    else {
        memcpy(token, start, len);
        token[len] = '\0';
        rc = 0;
        /* Anyone who can read the token can do what it allows; one who can write
         * it can replace it at the next reload. */
        if ((st.st_mode & 077) && warnlen)
            snprintf(warn, warnlen,
                     "token file %s is accessible to group or others (mode %04o): anyone who "
                     "can read it can queue jobs and change the sampling; chmod 600 it (make "
                     "install creates it 0600)",
                     path, (unsigned)(st.st_mode & 07777));
    }
    explicit_bzero(buf, sizeof(buf));
    return rc;
}

/* ---- errors and responses ---- */

/* A truncated string may end inside a UTF-8 sequence, which jansson refuses:
 * cut the incomplete tail. */
static void utf8_trim_tail(char *s)
{
    size_t n = strlen(s);
    for (size_t back = 1; back <= 4 && back <= n; back++) {
        unsigned char c = (unsigned char)s[n - back];
        if ((c & 0xC0) == 0x80)
            continue; /* continuation byte: keep looking for the lead */
        size_t need = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
        if (need > back)
            s[n - back] = '\0';
        return;
    }
}

void api_error_set(struct api_error *e, unsigned status, const char *fmt, ...)
{
    va_list ap;
    memset(e, 0, sizeof(*e));
    e->status = status;
    va_start(ap, fmt);
    int n = vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof(e->detail))
        utf8_trim_tail(e->detail);
}

void api_error_param(struct api_error *e, const char *name)
{
    int n = snprintf(e->parameter, sizeof(e->parameter), "%s", name ? name : "");
    if (n >= (int)sizeof(e->parameter))
        utf8_trim_tail(e->parameter);
}

const char *api_reason_phrase(unsigned status) { return MHD_get_reason_phrase_for(status); }

/* ---- JSON the parser refused ---- */

/* jansson reports an integer beyond int64 or a real beyond double as an error,
 * though the text is valid JSON. The error code says so from jansson 2.14;
 * older releases (JetPack 5's Ubuntu 20.04 ships 2.12) only in the text. */
static bool json_numeric_overflow(const json_error_t *jerr)
{
#if JANSSON_VERSION_HEX >= 0x020e00
    return json_error_code(jerr) == json_error_numeric_overflow;
#else
    return strstr(jerr->text, "too big") || strstr(jerr->text, "number overflow");
#endif
}

static bool json_number_char(char c)
{
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

static bool json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* The key of the object member whose value starts at body[at] ("key" : value),
 * copied into key; false for an array element or a top-level value, and for a
 * key with escapes (it would need decoding to be named correctly). */
static bool member_before(const char *body, size_t at, char *key, size_t keylen)
{
    size_t i = at;
    while (i > 0 && json_space(body[i - 1]))
        i--;
    if (i == 0 || body[i - 1] != ':')
        return false;
    i--;
    while (i > 0 && json_space(body[i - 1]))
        i--;
    if (i == 0 || body[i - 1] != '"')
        return false;
    size_t end = i - 1; /* the closing quote */
    size_t start = end;
    while (start > 0 && body[start - 1] != '"') {
        unsigned char c = (unsigned char)body[start - 1];
        if (c == '\\' || c < 0x20)
            return false;
        start--;
    }
    /* An escaped quote ends the scan too: a backslash before it means escapes. */
    if (start == 0 || (start >= 2 && body[start - 2] == '\\') || end - start >= keylen)
        return false;
    memcpy(key, body + start, end - start);
    key[end - start] = '\0';
    return true;
}

void api_json_error(const char *body, size_t len, const json_error_t *jerr, struct api_error *e)
{
    int line = jerr->line > 0 ? jerr->line : 1;
    int column = jerr->column > 0 ? jerr->column : 1;
    if (!json_numeric_overflow(jerr) || !body) {
        char text[JSON_ERROR_TEXT_LENGTH * 4];
        text_quote(jerr->text, text, sizeof(text)); /* it may quote the bad bytes */
        api_error_set(e, 400, "invalid JSON at line %d, column %d: %s", line, column, text);
        e->line = line;
        e->column = column;
        return;
    }
    /* jansson stops right after the number: find where it starts. */
    size_t end = jerr->position > 0 && (size_t)jerr->position < len ? (size_t)jerr->position : len;
    if (end > 0 && !json_number_char(body[end - 1]))
        end--;
    while (end < len && json_number_char(body[end]))
        end++;
    size_t start = end;
    while (start > 0 && json_number_char(body[start - 1]))
        start--;

    char number[48] = "", key[64] = "", where[sizeof(key) * 4 + 64];
    bool is_real = false;
    if (start < end) {
        char *tok = strndup(body + start, end - start);
        if (tok) {
            text_quote(tok, number, sizeof(number));
            free(tok);
        }
        for (size_t i = start; i < end; i++)
            is_real |= body[i] == '.' || body[i] == 'e' || body[i] == 'E';
        /* Columns count from the number's last character; it is ASCII. */
        if (column >= (int)(end - start))
            column -= (int)(end - start) - 1;
    }
    bool member = start < end && member_before(body, start, key, sizeof(key));
    if (member) {
        char quoted[sizeof(key) * 4];
        text_quote(key, quoted, sizeof(quoted));
        snprintf(where, sizeof(where), "member '%s' at line %d, column %d", quoted, line, column);
    } else {
        snprintf(where, sizeof(where), "at line %d, column %d", line, column);
    }
    api_error_set(e, 422, "%s: the number %s is out of range (%s)", where,
                  number[0] ? number : "there",
                  is_real ? "numbers must be finite doubles, at most about 1.8e308 in magnitude"
                          : "integers must lie in [-9223372036854775808, 9223372036854775807]");
    if (member)
        api_error_param(e, key);
    e->line = line;
    e->column = column;
}

json_t *api_problem_json(const struct api_error *e, const char *instance)
{
    unsigned status = e->status ? e->status : 500;
    json_t *p = json_object();
    if (!p)
        return NULL;
    int rc = 0;
    rc |= json_object_set_new(p, "type", json_string("about:blank"));
    rc |= json_object_set_new(p, "title", json_string(api_reason_phrase(status)));
    rc |= json_object_set_new(p, "status", json_integer(status));
    /* The detail may quote bytes a client sent; keep the document valid UTF-8. */
    json_t *detail = json_string(e->detail);
    if (!detail)
        detail = json_string("(the detail is not valid UTF-8)");
    rc |= json_object_set_new(p, "detail", detail);
    json_t *inst = json_string(instance ? instance : "");
    rc |= json_object_set_new(p, "instance", inst ? inst : json_string(""));
    if (e->parameter[0]) {
        json_t *param = json_string(e->parameter);
        rc |= json_object_set_new(p, "parameter", param ? param : json_string("?"));
    }
    if (e->line > 0) {
        rc |= json_object_set_new(p, "line", json_integer(e->line));
        rc |= json_object_set_new(p, "column", json_integer(e->column));
    }
    if (rc) {
        json_decref(p);
        return NULL;
    }
    return p;
}

static void response_reset(struct api_response *res)
{
    json_decref(res->json);
    free(res->text);
    res->json = NULL;
    res->text = NULL;
    res->text_len = 0;
    if (res->stream_free && res->stream_ctx)
        res->stream_free(res->stream_ctx);
    res->stream_read = NULL;
    res->stream_free = NULL;
    res->stream_ctx = NULL;
}

void api_respond_error_with_id(struct api_response *res, const struct api_error *e,
                               const char *instance, const char *member, int64_t value)
{
    response_reset(res);
    res->status = e->status ? e->status : 500;
    res->content_type = "application/problem+json";
    res->json = api_problem_json(e, instance);
    if (res->json && member && json_object_set_new(res->json, member, json_integer(value))) {
        json_decref(res->json);
        res->json = NULL;
    }
}

void api_respond_error(struct api_response *res, const struct api_error *e, const char *instance)
{
    api_respond_error_with_id(res, e, instance, NULL, 0);
}

void api_respond_json(struct api_response *res, unsigned status, json_t *json)
{
    response_reset(res);
    res->status = status;
    res->content_type = "application/json";
    res->json = json;
    if (!json) {
        struct api_error e;
        api_error_set(&e, 500, "out of memory while building the response");
        api_respond_error(res, &e, NULL);
    }
}

/* ---- listen address ---- */

int http_parse_listen(const char *listen, char *host, size_t hostlen, char *port, size_t portlen,
                      char *err, size_t errlen)
{
    const char *h, *p;
    size_t hl;
    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');
        if (!close || close[1] != ':') {
            snprintf(err, errlen, "listen address '%s': expected [IPv6]:PORT such as [::1]:9740",
                     listen);
            return -1;
        }
        h = listen + 1;
        hl = (size_t)(close - h);
        p = close + 2;
    } else {
        const char *colon = strrchr(listen, ':');
        if (!colon) {
            snprintf(err, errlen, "listen address '%s': expected HOST:PORT such as 127.0.0.1:9740",
                     listen);
            return -1;
        }
        h = listen;
        hl = (size_t)(colon - h);
        p = colon + 1;
        if (memchr(h, ':', hl)) {
            snprintf(err, errlen,
                     "listen address '%s': put an IPv6 address in brackets, e.g. [::1]:9740",
                     listen);
            return -1;
        }
    }
    if (hl == 0) {
        snprintf(err, errlen,
                 "listen address '%s' has no host (0.0.0.0:PORT or [::]:PORT listens on every "
                 "interface)",
                 listen);
        return -1;
    }
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(p, &end, 10);
    if (!*p || *p == '-' || *p == '+' || *end || errno || v > 65535) {
        snprintf(err, errlen, "listen address '%s': port '%s' is not a number in [0, 65535]",
                 listen, p);
        return -1;
    }
    if (hl >= hostlen) {
        snprintf(err, errlen, "listen address '%s': host name too long", listen);
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    snprintf(port, portlen, "%lu", v);
    return 0;
}

/* ---- logging ---- */

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    log_warn("http", "libmicrohttpd: %s", line);
}

static const char *termination_name(enum MHD_RequestTerminationCode toe)
{
    switch (toe) {
    case MHD_REQUEST_TERMINATED_COMPLETED_OK: return "completed";
    case MHD_REQUEST_TERMINATED_WITH_ERROR: return "connection error";
    case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED: return "timed out";
    case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN: return "server shutting down";
    case MHD_REQUEST_TERMINATED_READ_ERROR: return "client closed the connection";
    case MHD_REQUEST_TERMINATED_CLIENT_ABORT: return "client aborted";
    }
    return "terminated";
}

/* ---- per-request state ---- */

static struct http_request *request_new(struct http_server *srv, struct MHD_Connection *conn,
                                        const char *method, const char *url)
{
    struct http_request *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->path = strdup(url ? url : "");
    if (!r->path || pthread_mutex_init(&r->lock, NULL) != 0) {
        free(r->path);
        free(r);
        return NULL;
    }
    r->srv = srv;
    r->conn = conn;
    r->start_ns = clock_mono_ns();
    text_quote(method ? method : "?", r->method, sizeof(r->method));
    text_quote(r->path, r->path_safe, sizeof(r->path_safe));
    return r;
}

static void list_remove_locked(struct http_server *srv, struct http_request *r)
{
    if (!r->in_list)
        return;
    if (r->prev)
        r->prev->next = r->next;
    else
        srv->waiting = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
    r->in_list = false;
    pthread_cond_broadcast(&srv->changed);
}

static void deferred_unref(struct api_deferred *d)
{
    pthread_mutex_lock(&d->lock);
    bool last = --d->refs == 0;
    pthread_mutex_unlock(&d->lock);
    if (last) {
        pthread_mutex_destroy(&d->lock);
        free(d);
    }
}

static void request_free(struct http_request *r)
{
    struct http_server *srv = r->srv;
    if (r->waiter_added && srv->app->runner)
        runner_remove_waiter(srv->app->runner, &r->waiter);
    if (r->deferred) {
        /* Waits for a resume in progress on another thread to be done with r. */
        pthread_mutex_lock(&r->deferred->lock);
        r->deferred->r = NULL;
        pthread_mutex_unlock(&r->deferred->lock);
        deferred_unref(r->deferred);
        r->deferred = NULL;
    }
    if (r->deferred_release)
        r->deferred_release(r->deferred_ctx);
    pthread_mutex_lock(&srv->lock);
    list_remove_locked(srv, r);
    pthread_mutex_unlock(&srv->lock);
    pthread_mutex_destroy(&r->lock);
    json_decref(r->parsed);
    free(r->body);
    free(r->path);
    free(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    struct http_request *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    double ms = (double)(clock_mono_ns() - r->start_ns) / 1e6;
    bool quiet = strcmp(r->path_safe, "/v1/health") == 0 && r->status == 200;
    enum jp_log_level level = quiet ? JP_LOG_DEBUG : JP_LOG_INFO;
    if (r->status && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        jp_log(level, "http", "%s %s %u %.1f ms", r->method, r->path_safe, r->status, ms);
    else if (r->status)
        jp_log(level, "http", "%s %s %u %.1f ms (%s)", r->method, r->path_safe, r->status, ms,
               termination_name(toe));
    else
        jp_log(level, "http", "%s %s - %.1f ms (%s, no response)", r->method, r->path_safe, ms,
               termination_name(toe));
    request_free(r);
}

/* ---- sending ---- */

static enum MHD_Result add_header(struct MHD_Response *resp, const char *name, const char *value)
{
    return MHD_add_response_header(resp, name, value);
}

_Static_assert(API_STREAM_END == MHD_CONTENT_READER_END_OF_STREAM &&
                   API_STREAM_ERROR == MHD_CONTENT_READER_END_WITH_ERROR,
               "api.h stream codes must be libmicrohttpd's");

/* json_dump_callback's sink for a response body. */
struct dump_buffer {
    char *data;
    size_t len, cap;
};

static int dump_append(const char *buffer, size_t size, void *ctx)
{
    struct dump_buffer *b = ctx;
    if (size > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap - b->len < size) {
            if (cap > SIZE_MAX / 2)
                return -1;
            cap *= 2;
        }
        char *d = realloc(b->data, cap);
        if (!d)
            return -1;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, buffer, size);
    b->len += size;
    return 0;
}

/* Queues res (and frees what it owns). allow/www_auth are extra headers or NULL. */
static enum MHD_Result send_response(struct http_request *r, struct api_response *res,
                                     const char *allow, const char *www_auth)
{
    char *body = NULL;
    size_t len = 0;
    bool oom = false;
    const char *ctype = res->content_type ? res->content_type : "application/json";
    if (res->json) {
        /* One pass into a growing buffer (json_dumpb would print it twice: once
         * to learn the size); the newline after the document. */
        struct dump_buffer out = {0};
        if (json_dump_callback(res->json, dump_append, &out,
                               JSON_COMPACT | JSON_REAL_PRECISION(12)) == 0 &&
            dump_append("\n", 1, &out) == 0) {
            body = out.data;
            len = out.len;
        } else {
            free(out.data);
            oom = true;
        }
        json_decref(res->json);
        res->json = NULL;
    } else if (res->text) {
        body = res->text;
        len = res->text_len;
        res->text = NULL;
    }
    if (oom) {
        log_error("http", "%s %s: out of memory while serialising the response", r->method,
                  r->path_safe);
        return MHD_NO;
    }
    struct MHD_Response *resp;
    if (res->stream_read) {
        /* A streamed body (api.h): chunked, MHD calls the reader and, when the
         * response is destroyed, the free callback (also if creation fails). */
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, API_STREAM_BLOCK_BYTES,
                                                 res->stream_read, res->stream_ctx,
                                                 res->stream_free);
        if (!resp && res->stream_free)
            res->stream_free(res->stream_ctx);
        res->stream_read = NULL;
        res->stream_free = NULL;
        res->stream_ctx = NULL;
    } else {
        resp = body ? MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE)
                    : MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    }
    if (!resp) {
        free(body);
        log_error("http", "%s %s: cannot create the response", r->method, r->path_safe);
        return MHD_NO;
    }
    char retry[16];
    bool ok = add_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) == MHD_YES &&
              add_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") == MHD_YES;
    if (ok && res->location[0])
        ok = add_header(resp, MHD_HTTP_HEADER_LOCATION, res->location) == MHD_YES;
    if (ok && res->retry_after_s) {
        snprintf(retry, sizeof(retry), "%u", res->retry_after_s);
        ok = add_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, retry) == MHD_YES;
    }
    if (ok && res->content_disposition[0])
        ok = add_header(resp, MHD_HTTP_HEADER_CONTENT_DISPOSITION, res->content_disposition) ==
             MHD_YES;
    if (ok && allow)
        ok = add_header(resp, MHD_HTTP_HEADER_ALLOW, allow) == MHD_YES;
    if (ok && www_auth)
        ok = add_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, www_auth) == MHD_YES;
    enum MHD_Result rc = ok ? MHD_queue_response(r->conn, res->status, resp) : MHD_NO;
    MHD_destroy_response(resp);
    if (rc == MHD_YES) {
        r->status = res->status;
        r->responded = true;
    } else {
        log_error("http", "%s %s: cannot queue the %u response", r->method, r->path_safe,
                  res->status);
    }
    return rc;
}

static enum MHD_Result send_problem(struct http_request *r, const struct api_error *e,
                                    const char *allow, const char *www_auth)
{
    struct api_response res = {0};
    api_respond_error(&res, e, r->path_safe);
    return send_response(r, &res, allow, www_auth);
}

/* ---- the access handler ---- */

static const char *header(struct MHD_Connection *conn, const char *name)
{
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

/* "/v1/health, /v1/device, ... and /metrics": every path of the route table
 * once, in table order, for the 404 hint. */
static void route_paths(char *buf, size_t buflen)
{
    size_t distinct = 0, listed = 0;
    for (size_t i = 0; i < api_route_count; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(api_routes[j].pattern, api_routes[i].pattern) == 0;
        distinct += !seen;
    }
    buf[0] = '\0';
    for (size_t i = 0; i < api_route_count; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(api_routes[j].pattern, api_routes[i].pattern) == 0;
        if (seen)
            continue;
        listed++;
        if (listed > 1)
            append(buf, buflen, listed == distinct ? " and " : ", ");
        append(buf, buflen, api_routes[i].pattern);
    }
}

/* Route, auth and Content-Length: everything that can be decided from headers. */
static void request_classify(struct http_request *r)
{
    struct app *app = r->srv->app;
    struct api_error *e = &r->early;
    enum api_match m = api_route_match(r->method, r->path, &r->route, r->id, sizeof(r->id),
                                       r->allow, sizeof(r->allow));
    if (m == API_MATCH_NOT_FOUND) {
        char paths[API_DETAIL_MAX / 2];
        route_paths(paths, sizeof(paths));
        api_error_set(e, 404, "no resource at %s; the API has %s", r->path_safe, paths);
    } else if (m == API_MATCH_BAD_METHOD) {
        api_error_set(e, 405, "method %s is not allowed on %s; allowed: %s", r->method,
                      r->path_safe, r->allow);
    } else {
        const char *auth = header(r->conn, MHD_HTTP_HEADER_AUTHORIZATION);
        struct http_server *srv = r->srv;
        pthread_mutex_lock(&srv->auth_lock);
        bool reads = srv->auth_reads;
        bool needed = srv->token[0] && http_route_needs_token(r->route, reads);
        bool valid = needed && auth && api_bearer_ok(auth, srv->token);
        pthread_mutex_unlock(&srv->auth_lock);
        if (needed && !auth)
            api_error_set(e, 401, "%s %s needs an 'Authorization: Bearer <token>' header%s",
                          r->method, r->path_safe,
                          r->route->mutating ? "" : " (server.auth_reads is on)");
        else if (needed && !valid)
            api_error_set(e, 401, "the bearer token in the Authorization header is not valid");
    }
    if (e->status == 0) {
        const char *cl = header(r->conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end = NULL;
            errno = 0;
            unsigned long long v = strtoull(cl, &end, 10);
            if (end != cl && *end == '\0' && errno == 0 && v > app->cfg->max_body_bytes)
                api_error_set(e, 413,
                              "request body of %llu bytes is larger than the %" PRIu64
                              " bytes server.max_body_bytes allows",
                              v, app->cfg->max_body_bytes);
        }
    }
}

static void request_take_body(struct http_request *r, const char *data, size_t size)
{
    uint64_t limit = r->srv->app->cfg->max_body_bytes;
    r->body_seen += size;
    if (r->early.status || !r->route || r->route->body == API_BODY_NONE)
        return; /* drained, not stored */
    if (r->body_seen > limit) {
        api_error_set(&r->early, 413,
                      "request body is larger than the %" PRIu64
                      " bytes server.max_body_bytes allows",
                      limit);
        free(r->body);
        r->body = NULL;
        r->body_len = r->body_cap = 0;
        return;
    }
    if (r->body_len + size + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 4096;
        while (cap < r->body_len + size + 1)
            cap *= 2;
        char *nb = realloc(r->body, cap);
        if (!nb) {
            api_error_set(&r->early, 500, "out of memory while reading the request body");
            return;
        }
        r->body = nb;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, size);
    r->body_len += size;
    r->body[r->body_len] = '\0';
}

static enum MHD_Result send_early(struct http_request *r)
{
    const char *allow = r->early.status == 405 ? r->allow : NULL;
    const char *www = r->early.status == 401 ? "Bearer realm=\"jetprof\"" : NULL;
    return send_problem(r, &r->early, allow, www);
}

struct query_collect {
    struct api_query_param *params;
    size_t count;
    bool overflow;
};

static enum MHD_Result collect_query(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    (void)kind;
    struct query_collect *q = cls;
    if (q->count >= API_MAX_QUERY_PARAMS) {
        q->overflow = true;
        return MHD_NO;
    }
    q->params[q->count].key = key ? key : "";
    q->params[q->count].value = value ? value : "";
    q->count++;
    return MHD_YES;
}

static enum MHD_Result run_handler(struct http_request *r)
{
    struct api_query_param params[API_MAX_QUERY_PARAMS];
    struct query_collect qc = {params, 0, false};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, collect_query, &qc);

    struct api_request req = {
        .app = r->srv->app,
        .method = r->route->method,
        .path = r->path_safe,
        .id = strstr(r->route->pattern, "{id}") ? r->id : NULL,
        .query = params,
        .query_count = qc.count,
        .query_overflow = qc.overflow,
        .http = r,
    };
    struct api_response res = {0};
    json_t *body = NULL;

    if (r->was_suspended) {
        pthread_mutex_lock(&r->lock);
        req.resumed = true;
        req.wait_job_id = r->job_id;
        req.wait_state = r->finished ? r->final_state : DB_JOB_QUEUED;
        pthread_mutex_unlock(&r->lock);
        req.deferred_ctx = r->deferred_ctx;
    } else if (r->route->body == API_BODY_JSON_OPTIONAL && r->body_len == 0) {
        req.body = NULL; /* allowed: the handler takes its defaults */
    } else if (r->route->body != API_BODY_NONE) {
        struct api_error e = {0};
        if (r->body_len == 0) {
            api_error_set(&e, 400,
                          "%s %s needs a JSON object in the request body; the body is empty",
                          r->method, r->path_safe);
            return send_problem(r, &e, NULL, NULL);
        }
        json_error_t jerr;
        /* json_loadb(JSON_REJECT_DUPLICATES | JSON_DECODE_ANY), faster (json_body.h) */
        body = json_body_parse(r->body, r->body_len, &jerr);
        if (!body) {
            api_json_error(r->body, r->body_len, &jerr, &e);
            return send_problem(r, &e, NULL, NULL);
        }
        req.body = body;
    }

    r->route->handler(&req, &res);
    /* Kept until the request ends (request_free, after MHD has sent the answer):
     * tearing down a large tree - a batch of graphs is ~100 MB of jansson
     * values - is then not part of the client's wait. */
    if (body) {
        json_decref(r->parsed);
        r->parsed = body;
    }
    if (res.suspended) {
        r->was_suspended = true;
        response_reset(&res);
        return MHD_YES;
    }
    if (res.status == 0) {
        response_reset(&res);
        struct api_error e;
        api_error_set(&e, 500, "the handler of %s %s gave no answer", r->method, r->path_safe);
        return send_problem(r, &e, NULL, NULL);
    }
    return send_response(r, &res, NULL, NULL);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct http_server *srv = cls;
    struct http_request *r = *con_cls;

    if (!r) {
        r = request_new(srv, conn, method, url);
        if (!r) {
            log_error("http", "%s %s: out of memory for the request state", method, url);
            return MHD_NO;
        }
        *con_cls = r;
        request_classify(r);
        const char *expect = header(conn, MHD_HTTP_HEADER_EXPECT);
        /* The client sends nothing until "100 Continue": answer now instead. */
        if (r->early.status && expect && strcasecmp(expect, "100-continue") == 0)
            return send_early(r);
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (!r->responded)
            request_take_body(r, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->responded)
        return MHD_YES;
    if (r->early.status)
        return send_early(r);
    return run_handler(r);
}

/* ---- waiting for a job ---- */

/* Records the outcome once and resumes the connection if it is suspended.
 * true when this call recorded it. */
static bool finish_wait(struct http_request *r, enum db_job_state state)
{
    bool first = false;
    pthread_mutex_lock(&r->lock);
    if (!r->finished) {
        first = true;
        r->finished = true;
        r->final_state = state;
        if (r->suspended) {
            r->suspended = false;
            MHD_resume_connection(r->conn);
        }
    }
    pthread_mutex_unlock(&r->lock);
    return first;
}

/* Runner thread: must not block; the request lock is held only for flag updates. */
static void on_job_done(int64_t job_id, enum db_job_state state, void *ctx)
{
    (void)job_id;
    (void)finish_wait(ctx, state);
}

enum api_wait_result api_wait_for_job(struct api_request *req, struct api_response *res,
                                      int64_t job_id)
{
    struct http_request *r = req->http;
    req->wait_job_id = job_id;
    req->wait_state = DB_JOB_QUEUED;
    if (!r || !req->app->runner)
        return API_WAIT_FINISHED;
    struct http_server *srv = r->srv;

    r->job_id = job_id;
    r->waiter = (struct runner_waiter){.job_id = job_id, .done = on_job_done, .ctx = r};
    pthread_mutex_lock(&srv->lock);
    if (srv->stopping) {
        pthread_mutex_unlock(&srv->lock);
        return API_WAIT_FINISHED;
    }
    r->waiter_added = true; /* before the list publishes r to http_stop */
    r->next = srv->waiting;
    r->prev = NULL;
    if (srv->waiting)
        srv->waiting->prev = r;
    srv->waiting = r;
    r->in_list = true;
    pthread_mutex_unlock(&srv->lock);

    /* May call on_job_done on this thread when the job is finished already, so
     * r->lock must not be held here. */
    runner_add_waiter(req->app->runner, &r->waiter);

    pthread_mutex_lock(&r->lock);
    if (r->finished) {
        req->wait_state = r->final_state;
        pthread_mutex_unlock(&r->lock);
        return API_WAIT_FINISHED;
    }
    MHD_suspend_connection(r->conn);
    r->suspended = true;
    pthread_mutex_unlock(&r->lock);
    res->suspended = true;
    return API_WAIT_SUSPENDED;
}

/* ---- answering later ---- */

struct api_deferred *api_defer(struct api_request *req, struct api_response *res, void *ctx,
                               void (*ctx_release)(void *ctx))
{
    struct http_request *r = req->http;
    if (!r || r->deferred || r->waiter_added)
        return NULL;
    struct http_server *srv = r->srv;
    struct api_deferred *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    if (pthread_mutex_init(&d->lock, NULL) != 0) {
        free(d);
        return NULL;
    }
    d->refs = 2;
    d->r = r;

    /* In the waiting list, so http_stop() answers it rather than stopping MHD
     * with a suspended connection. */
    pthread_mutex_lock(&srv->lock);
    if (srv->stopping) {
        pthread_mutex_unlock(&srv->lock);
        pthread_mutex_destroy(&d->lock);
        free(d);
        return NULL;
    }
    r->next = srv->waiting;
    r->prev = NULL;
    if (srv->waiting)
        srv->waiting->prev = r;
    srv->waiting = r;
    r->in_list = true;
    pthread_mutex_unlock(&srv->lock);

    /* http_stop() may have answered it already (past its grace period): then
     * there is nothing to suspend and nobody must resume it. */
    pthread_mutex_lock(&r->lock);
    if (r->finished) {
        pthread_mutex_unlock(&r->lock);
        pthread_mutex_destroy(&d->lock);
        free(d);
        return NULL;
    }
    r->deferred = d;
    r->deferred_ctx = ctx;
    r->deferred_release = ctx_release;
    MHD_suspend_connection(r->conn);
    r->suspended = true;
    pthread_mutex_unlock(&r->lock);
    res->suspended = true;
    return d;
}

void api_deferred_resume(struct api_deferred *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->lock);
    if (d->r)
        (void)finish_wait(d->r, DB_JOB_DONE);
    pthread_mutex_unlock(&d->lock);
    deferred_unref(d);
}

/* ---- start and stop ---- */

/* Why bind() fails on addr, for the start-up error (MHD only logs it). */
static void bind_diagnosis(const struct sockaddr *addr, socklen_t len, char *why, size_t whylen)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, whylen, "%s", strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, addr, len) != 0)
        snprintf(why, whylen, "%s", strerror(errno));
    else
        snprintf(why, whylen, "libmicrohttpd could not start (see the log above)");
    close(fd);
}

/* The server's locks and its copy of the token (MHD already stopped or never started). */
static void server_free(struct http_server *srv)
{
    explicit_bzero(srv->token, sizeof(srv->token));
    pthread_mutex_destroy(&srv->auth_lock);
    pthread_cond_destroy(&srv->changed);
    pthread_mutex_destroy(&srv->lock);
    free(srv);
}

int http_start(struct app *app, struct http_server **out, uint16_t *port_out, char *err,
               size_t errlen)
{
    const struct config *cfg = app->cfg;
    char host[CONFIG_STR_MAX], port[8];
    *out = NULL;
    if (http_parse_listen(cfg->listen, host, sizeof(host), port, sizeof(port), err, errlen) != 0)
        return -1;

    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0 || !ai) {
        snprintf(err, errlen, "listen address '%s': cannot resolve '%s': %s", cfg->listen, host,
                 gai ? gai_strerror(gai) : "no address");
        if (ai)
            freeaddrinfo(ai);
        return -1;
    }
    struct sockaddr_storage addr;
    socklen_t addrlen = ai->ai_addrlen <= sizeof(addr) ? (socklen_t)ai->ai_addrlen : 0;
    memset(&addr, 0, sizeof(addr));
    memcpy(&addr, ai->ai_addr, addrlen);
    freeaddrinfo(ai);
    if (addr.ss_family != AF_INET && addr.ss_family != AF_INET6) {
        snprintf(err, errlen, "listen address '%s' is neither IPv4 nor IPv6", cfg->listen);
        return -1;
    }

    struct http_server *srv = calloc(1, sizeof(*srv));
    if (!srv) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    srv->app = app;
    if (pthread_mutex_init(&srv->lock, NULL) != 0) {
        free(srv);
        snprintf(err, errlen, "cannot create a mutex");
        return -1;
    }
    if (pthread_cond_init(&srv->changed, NULL) != 0) {
        pthread_mutex_destroy(&srv->lock);
        free(srv);
        snprintf(err, errlen, "cannot create a condition variable");
        return -1;
    }
    if (pthread_mutex_init(&srv->auth_lock, NULL) != 0) {
        pthread_cond_destroy(&srv->changed);
        pthread_mutex_destroy(&srv->lock);
        free(srv);
        snprintf(err, errlen, "cannot create a mutex");
        return -1;
    }
    snprintf(srv->token, sizeof(srv->token), "%s", app->token);
    srv->auth_reads = cfg->auth_reads && app->token[0];

    unsigned flags = MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
                     MHD_ALLOW_SUSPEND_RESUME;
    if (addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    unsigned pool = cfg->threads > 1 ? cfg->threads : 0;
    srv->mhd =
        MHD_start_daemon(flags, (uint16_t)strtoul(port, NULL, 10), NULL, NULL, on_access, srv,
                         /* first, so that MHD's own start-up messages use it */
                         MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, srv, MHD_OPTION_SOCK_ADDR,
                         (const struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE, pool,
                         MHD_OPTION_CONNECTION_TIMEOUT, HTTP_CONNECTION_TIMEOUT_S,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_END);
    if (!srv->mhd) {
        char why[160];
        bind_diagnosis((const struct sockaddr *)&addr, addrlen, why, sizeof(why));
        snprintf(err, errlen, "cannot listen on %s: %s", cfg->listen, why);
        server_free(srv);
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
    uint16_t bound = info ? info->port : 0;
    if (bound == 0) {
        snprintf(err, errlen, "listening on %s, but cannot tell which port was bound", cfg->listen);
        MHD_stop_daemon(srv->mhd);
        server_free(srv);
        return -1;
    }
    if (port_out)
        *port_out = bound;
    log_debug("http", "libmicrohttpd listening on %s, port %u, %u worker thread%s", cfg->listen,
              bound, pool ? pool : 1, pool > 1 ? "s" : "");
    *out = srv;
    return 0;
}

void http_stop(struct http_server *srv)
{
    if (!srv)
        return;
    struct runner *runner = srv->app->runner;
    int64_t start = clock_mono_ns();
    unsigned answered = 0;

    pthread_mutex_lock(&srv->lock);
    srv->stopping = true;
    while (srv->waiting) {
        int64_t elapsed = clock_mono_ns() - start;
        if (elapsed > HTTP_STOP_FORCE_NS)
            break;
        /* The runner normally answered every waiter in runner_stop(); a request
         * that registered after that is answered here. Past the grace period
         * every one left is answered, registered or not (request_free removes
         * its waiter before the memory goes). */
        for (struct http_request *r = srv->waiting; r; r = r->next) {
            if (elapsed > HTTP_STOP_GRACE_NS ||
                (runner && r->waiter_added && runner_remove_waiter(runner, &r->waiter))) {
                if (finish_wait(r, DB_JOB_QUEUED))
                    answered++;
            }
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 50 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&srv->changed, &srv->lock, &until);
    }
    bool left = srv->waiting != NULL;
    pthread_mutex_unlock(&srv->lock);
    if (answered)
        log_info("http", "answered %u waiting measurement request%s with 503 (stopping)", answered,
                 answered == 1 ? "" : "s");
    if (left)
        log_warn("http", "stopping with waiting requests still unanswered after %.1f s",
                 (double)HTTP_STOP_FORCE_NS / 1e9);
    MHD_stop_daemon(srv->mhd);
    server_free(srv);
}
