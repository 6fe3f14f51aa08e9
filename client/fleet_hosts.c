/*
 * fleet_hosts.c - the hosts file and the concurrent request helper of
 * `jetprof fleet` (see fleet_hosts.h).
 *
 * The requests go through one libcurl multi handle: every board's transfer
 * makes progress in the same loop, so asking 20 boards costs the slowest
 * answer (or one time-out), not the sum. Each easy handle is set up the way
 * http_client.c sets up its single requests (the same headers, protocols and
 * error classes), because a board must answer the fleet exactly as it answers
 * `jetprof`.
 */
#include "fleet_hosts.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "cli_common.h"
#include "http_client.h"

/* A fleet answer is a JSON document of a few KiB (a batch, the device); more
 * than this is not jetprofd's. */
#define FLEET_MAX_BODY_BYTES ((size_t)64 * 1024 * 1024)
/* A hosts file is a list of boards: anything this large is the wrong file. */
#define HOSTS_FILE_MAX_BYTES ((size_t)1024 * 1024)
/* How long one wait for network activity lasts at most: the interrupted flag
 * is looked at this often. */
#define POLL_SLICE_MS 200
#define USER_AGENT "jetprof/0.1.0 (fleet)"

/* ---- addresses ---- */

char *fleet_default_name(const char *url)
{
    const char *p = strstr(url, "://");
    return strdup(p ? p + 3 : url);
}

/* ---- the hosts file ---- */

const char *fleet_hosts_path(const char *hosts_flag, char *err, size_t errlen)
{
    if (hosts_flag && *hosts_flag)
        return hosts_flag;
    const char *env = getenv("JETPROF_HOSTS");
    if (env && *env)
        return env;
    snprintf(err, errlen, "which boards? give a hosts file with --hosts FILE or "
                          "JETPROF_HOSTS (one board per line: URL [NAME [TOKEN_FILE]])");
    return NULL;
}

void fleet_host_free(struct fleet_host *h)
{
    if (!h)
        return;
    free(h->url);
    free(h->name);
    free(h->token_file);
    free(h->token);
    memset(h, 0, sizeof *h);
}

void fleet_hosts_free(struct fleet_hosts *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->count; i++)
        fleet_host_free(&h->hosts[i]);
    free(h->hosts);
    free(h->path);
    memset(h, 0, sizeof *h);
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= FLEET_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(isalnum(c) || c == '.' || c == '_' || c == '-' || c == ':'))
            return false;
    }
    return true;
}

/* The token file as written on a line -> a path to open: "~/x" under $HOME, a
 * relative one under dir (the hosts file's directory). malloc'd; NULL with
 * err set. */
static char *resolve_path(const char *written, const char *dir, char *err, size_t errlen)
{
    const char *base = NULL, *rest = written;
    if (written[0] == '~' && written[1] == '/') {
        base = getenv("HOME");
        if (!base || !*base) {
            snprintf(err, errlen, "token file '%s': HOME is not set, so '~/' means nothing",
                     written);
            return NULL;
        }
        rest = written + 2;
    } else if (written[0] != '/') {
        base = dir;
    }
    size_t n = (base ? strlen(base) + 1 : 0) + strlen(rest) + 1;
    char *p = malloc(n);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (base)
        snprintf(p, n, "%s/%s", base, rest);
    else
        snprintf(p, n, "%s", rest);
    return p;
}

/* The directory of path ("." when it has none). malloc'd or NULL. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    size_t n = (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, path, n);
        d[n] = '\0';
    }
    return d;
}

/* Splits line (modified in place) into at most max blank-separated fields,
 * stopping at a '#' that starts a field. Returns the number of fields, or
 * max + 1 when there are more. */
static size_t split_fields(char *line, char **fields, size_t max)
{
    size_t n = 0;
    char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r')
            p++;
        if (*p == '\0' || *p == '#')
            return n;
        if (n == max)
            return max + 1;
        fields[n++] = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\r')
            p++;
        if (*p == '\0')
            return n;
        *p++ = '\0';
    }
}

/* Reads the whole file (at most HOSTS_FILE_MAX_BYTES). 0; -1 with err. */
static int read_hosts_text(const char *path, char **out, size_t *out_len, char *err,
                           size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot read the hosts file: %s", path, strerror(errno));
        return -1;
    }
    char *buf = malloc(HOSTS_FILE_MAX_BYTES + 1);
    if (!buf) {
        fclose(f);
        snprintf(err, errlen, "out of memory");
        return -2;
    }
    size_t n = fread(buf, 1, HOSTS_FILE_MAX_BYTES + 1, f);
    int read_error = ferror(f);
    int saved_errno = errno;
    fclose(f);
    if (read_error) {
        snprintf(err, errlen, "%s: cannot read the hosts file: %s", path, strerror(saved_errno));
        free(buf);
        return -1;
    }
    if (n > HOSTS_FILE_MAX_BYTES) {
        snprintf(err, errlen, "%s: larger than %zu KiB; a hosts file lists boards, one a line",
                 path, HOSTS_FILE_MAX_BYTES / 1024);
        free(buf);
        return -1;
    }
    buf[n] = '\0';
    if (memchr(buf, '\0', n)) {
        snprintf(err, errlen, "%s: a NUL byte: not a text file", path);
        free(buf);
        return -1;
    }
    *out = buf;
    *out_len = n;
    return 0;
}

/* One line's board into *h (strings malloc'd). 0; -1 with err (without the
 * "FILE:LINE: " prefix); -2 out of memory. */
static int parse_line(char **fields, size_t nf, const char *dir, struct fleet_host *h, char *err,
                      size_t errlen)
{
    char why[200];
    int rc = cli_parse_address(fields[0], "a token file", &h->url, why, sizeof why);
    if (rc == -2)
        return -2;
    if (rc != 0) {
        snprintf(err, errlen, "board address '%.200s': %s", fields[0], why);
        return -1;
    }
    if (nf >= 2 && strcmp(fields[1], "-") != 0) {
        if (!valid_name(fields[1])) {
            snprintf(err, errlen,
                     "board name '%.100s': use 1 to %d of the characters A-Z a-z 0-9 . _ : - "
                     "(or '-' for the address)",
                     fields[1], FLEET_NAME_MAX - 1);
            return -1;
        }
        h->name = strdup(fields[1]);
    } else {
        h->name = fleet_default_name(h->url);
    }
    if (!h->name)
        return -2;
    if (nf >= 3) {
        h->token_file = resolve_path(fields[2], dir, err, errlen);
        if (!h->token_file)
            return strcmp(err, "out of memory") == 0 ? -2 : -1;
        if (cli_read_token(h->token_file, &h->token, err, errlen) != 0)
            return -1;
    }
    return 0;
}

int fleet_hosts_load(const char *path, struct fleet_hosts *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    char *text = NULL, *dir = NULL;
    size_t len = 0;
    int rc = read_hosts_text(path, &text, &len, err, errlen);
    if (rc != 0)
        return rc;
    rc = -2;
    out->path = strdup(path);
    dir = dir_of(path);
    if (!out->path || !dir)
        goto fail_oom;

    size_t cap = 0;
    unsigned line_no = 0;
    char *line = text;
    while (line && line <= text + len) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        line_no++;
        char *fields[3];
        size_t nf = split_fields(line, fields, 3);
        if (nf > 3) {
            snprintf(err, errlen,
                     "%s:%u: more than three fields; a line is URL [NAME [TOKEN_FILE]] "
                     "(a '#' starts a comment)",
                     path, line_no);
            rc = -1;
            goto fail;
        }
        if (nf > 0) {
            if (out->count == cap) {
                size_t ncap = cap ? cap * 2 : 8;
                struct fleet_host *nh = realloc(out->hosts, ncap * sizeof *nh);
                if (!nh)
                    goto fail_oom;
                out->hosts = nh;
                cap = ncap;
            }
            struct fleet_host *h = &out->hosts[out->count];
            memset(h, 0, sizeof *h);
            h->line = line_no;
            char why[1024];
            int prc = parse_line(fields, nf, dir, h, why, sizeof why);
            if (prc != 0) {
                fleet_host_free(h);
                if (prc == -2)
                    goto fail_oom;
                snprintf(err, errlen, "%s:%u: %s", path, line_no, why);
                rc = -1;
                goto fail;
            }
            out->count++;
            for (size_t i = 0; i + 1 < out->count; i++) {
                const struct fleet_host *o = &out->hosts[i];
                if (strcmp(o->url, h->url) == 0) {
                    snprintf(err, errlen,
                             "%s:%u: board %s is already on line %u (each board once, or "
                             "it would measure the sweep twice)",
                             path, line_no, h->url, o->line);
                    rc = -1;
                    goto fail;
                }
                if (strcmp(o->name, h->name) == 0) {
                    snprintf(err, errlen, "%s:%u: the name '%s' is already used on line %u",
                             path, line_no, h->name, o->line);
                    rc = -1;
                    goto fail;
                }
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    if (out->count == 0) {
        snprintf(err, errlen, "%s: no board in the file (one a line: URL [NAME [TOKEN_FILE]])",
                 path);
        rc = -1;
        goto fail;
    }
    free(text);
    free(dir);
    return 0;

fail_oom:
    snprintf(err, errlen, "out of memory");
    rc = -2;
fail:
    free(text);
    free(dir);
    fleet_hosts_free(out);
    return rc;
}

/* ---- concurrent requests ---- */

struct transfer {
    CURL *easy;
    struct curl_slist *headers;
    char *url;
    char *auth;
    char *data;
    size_t len, cap;
    bool too_large, no_memory, finished;
    char curl_err[CURL_ERROR_SIZE];
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct transfer *t = userdata;
    size_t n = size * nmemb;
    if (n > FLEET_MAX_BODY_BYTES - t->len) {
        t->too_large = true;
        return 0; /* CURLE_WRITE_ERROR */
    }
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *p = realloc(t->data, cap);
        if (!p) {
            t->no_memory = true;
            return 0;
        }
        t->data = p;
        t->cap = cap;
    }
    memcpy(t->data + t->len, ptr, n);
    t->len += n;
    t->data[t->len] = '\0';
    return n;
}

static long ms_of(double s) { return (long)(s * 1000.0 + 0.5); }

/* Sets up t for req. 0, or -1 with err. */
static int setup_transfer(struct transfer *t, const struct fleet_request *req, char *err,
                          size_t errlen)
{
    size_t n = strlen(req->base_url) + strlen(req->path) + 1;
    t->url = malloc(n);
    if (!t->url) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(t->url, n, "%s%s", req->base_url, req->path);
    t->easy = curl_easy_init();
    if (!t->easy) {
        snprintf(err, errlen, "libcurl could not create a handle");
        return -1;
    }
    struct curl_slist *h = NULL, *nh;
    static const char *const fixed[] = {
        "Accept: application/json, application/problem+json, */*;q=0.5",
        /* never wait for "100 Continue": jetprofd answers a request body directly */
        "Expect:",
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        if (!(nh = curl_slist_append(h, fixed[i])))
            goto oom;
        h = nh;
    }
    if (req->body) {
        if (!(nh = curl_slist_append(h, "Content-Type: application/json")))
            goto oom;
        h = nh;
    }
    if (req->token && req->token[0]) {
        size_t an = strlen("Authorization: Bearer ") + strlen(req->token) + 1;
        t->auth = malloc(an);
        if (!t->auth)
            goto oom;
        snprintf(t->auth, an, "Authorization: Bearer %s", req->token);
        if (!(nh = curl_slist_append(h, t->auth)))
            goto oom;
        h = nh;
    }
    t->headers = h;

    double timeout_s = req->timeout_s > 0 ? req->timeout_s : 10.0;
    double connect_s = req->connect_timeout_s > 0 && req->connect_timeout_s < timeout_s
                           ? req->connect_timeout_s
                           : timeout_s;
    CURLcode c = CURLE_OK;
#define OPT(opt, val)                                                                        \
    do {                                                                                     \
        if (c == CURLE_OK)                                                                   \
            c = curl_easy_setopt(t->easy, (opt), (val));                                     \
    } while (0)
    OPT(CURLOPT_ERRORBUFFER, t->curl_err);
    OPT(CURLOPT_URL, t->url);
    OPT(CURLOPT_NOSIGNAL, 1L);
    OPT(CURLOPT_USERAGENT, USER_AGENT);
    OPT(CURLOPT_HTTPHEADER, t->headers);
    OPT(CURLOPT_WRITEFUNCTION, on_body);
    OPT(CURLOPT_WRITEDATA, (void *)t);
    OPT(CURLOPT_PRIVATE, (void *)t);
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85: CURLOPT_PROTOCOLS deprecated */
    OPT(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    OPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    OPT(CURLOPT_TIMEOUT_MS, ms_of(timeout_s));
    OPT(CURLOPT_CONNECTTIMEOUT_MS, ms_of(connect_s));
    if (req->body) {
        OPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        OPT(CURLOPT_POSTFIELDS, req->body);
    }
    if (strcmp(req->method, "GET") == 0 && !req->body)
        OPT(CURLOPT_HTTPGET, 1L);
    else if (!(strcmp(req->method, "POST") == 0 && req->body))
        OPT(CURLOPT_CUSTOMREQUEST, req->method);
#undef OPT
    if (c != CURLE_OK) {
        snprintf(err, errlen, "libcurl option: %s", curl_easy_strerror(c));
        return -1;
    }
    return 0;
oom:
    curl_slist_free_all(h);
    snprintf(err, errlen, "out of memory");
    return -1;
}

static void transfer_free(struct transfer *t)
{
    if (t->easy)
        curl_easy_cleanup(t->easy);
    curl_slist_free_all(t->headers);
    free(t->url);
    free(t->auth);
    free(t->data);
    memset(t, 0, sizeof *t);
}

/* The finished transfer t (libcurl's code rc) into r. */
static void finish_transfer(struct transfer *t, CURLcode rc, struct fleet_result *r, double t0)
{
    t->finished = true;
    r->elapsed_s = cli_monotonic_s() - t0;
    if (rc == CURLE_OK) {
        long status = 0;
        if (curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK) {
            r->rc = HTTP_CLIENT_ERROR;
            snprintf(r->err, sizeof r->err, "libcurl could not report the answer's status");
            return;
        }
        if (!t->data) {
            t->data = calloc(1, 1);
            if (!t->data) {
                r->rc = HTTP_CLIENT_ERROR;
                snprintf(r->err, sizeof r->err, "out of memory");
                return;
            }
        }
        r->rc = HTTP_CLIENT_OK;
        r->status = status;
        r->body = t->data;
        r->body_len = t->len;
        t->data = NULL;
        return;
    }
    if (t->too_large) {
        r->rc = HTTP_CLIENT_ERROR;
        snprintf(r->err, sizeof r->err, "the answer is larger than %zu MiB",
                 FLEET_MAX_BODY_BYTES >> 20);
    } else if (t->no_memory) {
        r->rc = HTTP_CLIENT_ERROR;
        snprintf(r->err, sizeof r->err, "out of memory while reading the answer");
    } else {
        r->rc = http_client_unreachable(t->easy, rc) ? HTTP_CLIENT_UNREACHABLE : HTTP_CLIENT_FAILED;
        snprintf(r->err, sizeof r->err, "%s", t->curl_err[0] ? t->curl_err
                                                             : curl_easy_strerror(rc));
    }
}

int fleet_request_all(const struct fleet_request *reqs, size_t n, struct fleet_result *results,
                      const volatile sig_atomic_t *interrupted, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        memset(&results[i], 0, sizeof results[i]);
        results[i].rc = HTTP_CLIENT_ERROR;
        snprintf(results[i].err, sizeof results[i].err, "not requested");
    }
    if (n == 0)
        return 0;
    struct transfer *ts = calloc(n, sizeof *ts);
    CURLM *multi = curl_multi_init();
    int rc = -1;
    if (!ts || !multi) {
        snprintf(err, errlen, "%s", ts ? "libcurl could not create a multi handle"
                                       : "out of memory");
        goto out;
    }
    double t0 = cli_monotonic_s();
    size_t added = 0;
    for (size_t i = 0; i < n; i++) {
        if (!reqs[i].base_url)
            continue;
        if (setup_transfer(&ts[i], &reqs[i], err, errlen) != 0)
            goto out;
        CURLMcode mc = curl_multi_add_handle(multi, ts[i].easy);
        if (mc != CURLM_OK) {
            snprintf(err, errlen, "libcurl: %s", curl_multi_strerror(mc));
            goto out;
        }
        added++;
    }
    size_t finished = 0;
    bool stop = false;
    while (finished < added) {
        int running = 0;
        CURLMcode mc = curl_multi_perform(multi, &running);
        if (mc != CURLM_OK) {
            snprintf(err, errlen, "libcurl: %s", curl_multi_strerror(mc));
            goto out;
        }
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            char *priv = NULL;
            if (curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv) != CURLE_OK ||
                !priv)
                continue;
            struct transfer *t = (struct transfer *)(void *)priv;
            if (t->finished)
                continue;
            finish_transfer(t, msg->data.result, &results[t - ts], t0);
            finished++;
        }
        if (finished >= added)
            break;
        if (interrupted && *interrupted) {
            stop = true;
            break;
        }
#if LIBCURL_VERSION_NUM >= 0x074200 /* 7.66: curl_multi_poll */
        mc = curl_multi_poll(multi, NULL, 0, POLL_SLICE_MS, NULL);
#else
        int fds = 0;
        mc = curl_multi_wait(multi, NULL, 0, POLL_SLICE_MS, &fds);
        if (mc == CURLM_OK && fds == 0) {
            /* nothing to wait on yet (name resolution, a back-off): sleep a little
             * rather than spin */
            struct timespec ts_sleep = {.tv_sec = 0, .tv_nsec = 20 * 1000000L};
            nanosleep(&ts_sleep, NULL);
        }
#endif
        if (mc != CURLM_OK) {
            snprintf(err, errlen, "libcurl: %s", curl_multi_strerror(mc));
            goto out;
        }
    }
    if (stop) {
        for (size_t i = 0; i < n; i++) {
            if (ts[i].easy && !ts[i].finished) {
                results[i].rc = HTTP_CLIENT_INTERRUPTED;
                snprintf(results[i].err, sizeof results[i].err, "interrupted");
            }
        }
        rc = HTTP_CLIENT_INTERRUPTED;
    } else {
        rc = 0;
    }

out:
    if (ts) {
        for (size_t i = 0; i < n; i++) {
            if (ts[i].easy && multi)
                curl_multi_remove_handle(multi, ts[i].easy);
            transfer_free(&ts[i]);
        }
    }
    if (multi)
        curl_multi_cleanup(multi);
    free(ts);
    if (rc == -1)
        fleet_results_free(results, n);
    return rc;
}

void fleet_results_free(struct fleet_result *results, size_t n)
{
    if (!results)
        return;
    for (size_t i = 0; i < n; i++) {
        free(results[i].body);
        results[i].body = NULL;
        results[i].body_len = 0;
    }
}

bool fleet_result_ok(const struct fleet_result *r)
{
    return r->rc == HTTP_CLIENT_OK && r->status >= 200 && r->status <= 299;
}

json_t *fleet_result_object(const struct fleet_result *r)
{
    if (!fleet_result_ok(r) || !r->body)
        return NULL;
    json_t *doc = json_loadb(r->body, r->body_len, 0, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

void fleet_result_problem(const struct fleet_result *r, char *buf, size_t len)
{
    switch (r->rc) {
    case HTTP_CLIENT_OK:
        break;
    case HTTP_CLIENT_UNREACHABLE:
        snprintf(buf, len, "unreachable: %s", r->err);
        return;
    case HTTP_CLIENT_FAILED:
        snprintf(buf, len, "no answer: %s", r->err);
        return;
    case HTTP_CLIENT_INTERRUPTED:
        snprintf(buf, len, "interrupted");
        return;
    default:
        snprintf(buf, len, "%s", r->err);
        return;
    }
    if (fleet_result_ok(r)) {
        json_t *doc = json_loadb(r->body, r->body_len, 0, NULL);
        snprintf(buf, len, "%s", json_is_object(doc) ? "ok" : "the answer is not a JSON object");
        json_decref(doc);
        return;
    }
    json_t *doc = json_loadb(r->body, r->body_len, 0, NULL);
    const char *title = NULL, *detail = NULL;
    if (json_is_object(doc)) {
        title = json_string_value(json_object_get(doc, "title"));
        detail = json_string_value(json_object_get(doc, "detail"));
    }
    if (!title || !*title)
        title = cli_reason_phrase(r->status);
    const char *hint = r->status == 401 ? " (give the board's token file in the hosts file)" : "";
    if (detail && *detail)
        snprintf(buf, len, "%ld %s: %s%s", r->status, title, detail, hint);
    else
        snprintf(buf, len, "%ld %s%s", r->status, title, hint);
    json_decref(doc);
}
