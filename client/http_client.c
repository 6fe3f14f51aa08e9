/*
 * http_client.c - see http_client.h. One libcurl easy handle per request: the
 * CLI makes a few requests per run (a progress poll once a second at most), so
 * reusing connections buys little and a fresh handle keeps every request's
 * state (headers, buffers) separate.
 */
#include "http_client.h"

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

/* An answer larger than this is refused rather than exhausting memory: the
 * biggest legitimate one, a 10000-row CSV export, is a few MiB. */
#define HTTP_CLIENT_MAX_BODY_BYTES ((size_t)512 * 1024 * 1024)
#define HTTP_CLIENT_USER_AGENT "jetprof/0.1.0"

struct body_buffer {
    char *data;
    size_t len, cap;
    int too_large;
    int no_memory;
    /* streaming (http_client_stream): a 2xx body goes to sink, not to data */
    http_body_fn sink;
    void *sink_ctx;
    CURL *curl;
    int sink_decided; /* the status was looked at (on the first chunk) */
    int sink_active;  /* ... and it is 2xx: chunks go to sink */
    int stopped;      /* sink asked to stop */
};

struct header_state {
    char *location;
    int no_memory;
};

int http_client_global_init(char *err, size_t errlen)
{
    CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "libcurl initialisation failed: %s", curl_easy_strerror(rc));
        return -1;
    }
    return 0;
}

void http_client_global_cleanup(void) { curl_global_cleanup(); }

void http_response_free(struct http_response *resp)
{
    if (!resp)
        return;
    free(resp->body);
    free(resp->content_type);
    free(resp->location);
    memset(resp, 0, sizeof *resp);
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct body_buffer *b = userdata;
    size_t n = size * nmemb;
    if (b->sink && !b->sink_decided) {
        /* the headers are complete before the first body byte */
        long status = 0;
        if (curl_easy_getinfo(b->curl, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
            status = 0;
        b->sink_active = status >= 200 && status <= 299;
        b->sink_decided = 1;
    }
    if (b->sink_active) {
        if (n > 0 && b->sink(b->sink_ctx, ptr, n) != 0) {
            b->stopped = 1;
            return 0; /* CURLE_WRITE_ERROR */
        }
        return n;
    }
    if (n > HTTP_CLIENT_MAX_BODY_BYTES - b->len) {
        b->too_large = 1;
        return 0; /* makes libcurl fail the transfer with CURLE_WRITE_ERROR */
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) {
            b->no_memory = 1;
            return 0;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* Keeps the Location header of the final answer. */
static size_t on_header(char *buffer, size_t size, size_t nitems, void *userdata)
{
    struct header_state *h = userdata;
    size_t n = size * nitems;
    static const char name[] = "location:";
    size_t name_len = sizeof name - 1;
    if (n > 5 && strncmp(buffer, "HTTP/", 5) == 0) {
        /* a new status line (e.g. after 100 Continue): forget earlier headers */
        free(h->location);
        h->location = NULL;
        return n;
    }
    if (n <= name_len || strncasecmp(buffer, name, name_len) != 0)
        return n;
    const char *v = buffer + name_len;
    const char *end = buffer + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && isspace((unsigned char)end[-1]))
        end--;
    char *copy = malloc((size_t)(end - v) + 1);
    if (!copy) {
        h->no_memory = 1;
        return 0;
    }
    memcpy(copy, v, (size_t)(end - v));
    copy[end - v] = '\0';
    free(h->location);
    h->location = copy;
    return n;
}

/* libcurl's progress callback, used only to notice *interrupted. */
static int on_progress(void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    const volatile sig_atomic_t *interrupted = clientp;
    return *interrupted ? 1 : 0; /* non-zero: CURLE_ABORTED_BY_CALLBACK */
}

bool http_client_unreachable(void *easy, int curl_code)
{
    CURL *curl = easy;
    switch ((CURLcode)curl_code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return true;
    case CURLE_OPERATION_TIMEDOUT: {
        /* a timeout before the connection was made is "cannot reach" */
        curl_off_t connect_us = 0;
        return curl_easy_getinfo(curl, CURLINFO_CONNECT_TIME_T, &connect_us) == CURLE_OK &&
               connect_us == 0;
    }
    default:
        return false;
    }
}

/* Sets one option; libcurl's only failures here are unknown options or no memory. */
#define SETOPT(curl, opt, val)                                                               \
    do {                                                                                     \
        CURLcode setopt_rc_ = curl_easy_setopt((curl), (opt), (val));                       \
        if (setopt_rc_ != CURLE_OK) {                                                        \
            snprintf(err, errlen, "libcurl option %s: %s", #opt,                            \
                     curl_easy_strerror(setopt_rc_));                                       \
            goto out;                                                                        \
        }                                                                                    \
    } while (0)

static struct curl_slist *append_header(struct curl_slist *list, const char *line, int *ok)
{
    struct curl_slist *n = curl_slist_append(list, line);
    if (!n) {
        *ok = 0;
        return list;
    }
    return n;
}

static int perform(const struct http_client_opts *opts, const char *method, const char *path,
                   const char *body, size_t body_len, http_body_fn on_data, void *ctx,
                   struct http_response *resp, char *err, size_t errlen)
{
    int result = HTTP_CLIENT_ERROR;
    CURL *curl = NULL;
    struct curl_slist *headers = NULL;
    char *url = NULL;
    char *auth = NULL;
    struct body_buffer buf = {.sink = on_data, .sink_ctx = ctx};
    struct header_state hs = {0};
    char curl_err[CURL_ERROR_SIZE] = "";

    memset(resp, 0, sizeof *resp);
    if (errlen)
        err[0] = '\0';

    size_t url_len = strlen(opts->base_url) + strlen(path) + 1;
    url = malloc(url_len);
    if (!url) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    snprintf(url, url_len, "%s%s", opts->base_url, path);

    curl = curl_easy_init();
    if (!curl) {
        snprintf(err, errlen, "libcurl could not create a handle");
        goto out;
    }
    buf.curl = curl;
    int ok = 1;
    headers = append_header(headers, "Accept: application/json, application/problem+json, "
                                     "text/csv;q=0.9, */*;q=0.5",
                            &ok);
    /* Never wait for "100 Continue": jetprofd answers a request body directly. */
    headers = append_header(headers, "Expect:", &ok);
    if (body)
        headers = append_header(headers, "Content-Type: application/json", &ok);
    if (opts->token && opts->token[0]) {
        size_t n = strlen("Authorization: Bearer ") + strlen(opts->token) + 1;
        auth = malloc(n);
        if (!auth) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        snprintf(auth, n, "Authorization: Bearer %s", opts->token);
        headers = append_header(headers, auth, &ok);
    }
    if (!ok) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }

    SETOPT(curl, CURLOPT_ERRORBUFFER, curl_err);
    SETOPT(curl, CURLOPT_URL, url);
    SETOPT(curl, CURLOPT_NOSIGNAL, 1L);
    SETOPT(curl, CURLOPT_USERAGENT, HTTP_CLIENT_USER_AGENT);
    SETOPT(curl, CURLOPT_HTTPHEADER, headers);
    SETOPT(curl, CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(curl, CURLOPT_WRITEDATA, &buf);
    SETOPT(curl, CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(curl, CURLOPT_HEADERDATA, &hs);
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85: CURLOPT_PROTOCOLS deprecated */
    SETOPT(curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SETOPT(curl, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    if (opts->timeout_s > 0)
        SETOPT(curl, CURLOPT_TIMEOUT_MS, (long)(opts->timeout_s * 1000.0 + 0.5));
    if (opts->connect_timeout_s > 0)
        SETOPT(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)(opts->connect_timeout_s * 1000.0 + 0.5));
    if (opts->idle_timeout_s > 0) {
        /* "less than 1 byte per second for this many seconds": libcurl counts
         * whole seconds, so round up rather than give up early */
        double whole_s = ceil(opts->idle_timeout_s);
        SETOPT(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
        SETOPT(curl, CURLOPT_LOW_SPEED_TIME, (long)(whole_s < 1.0 ? 1.0 : whole_s));
    }
    if (opts->interrupted) {
        SETOPT(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
        SETOPT(curl, CURLOPT_XFERINFODATA, (void *)opts->interrupted);
        SETOPT(curl, CURLOPT_NOPROGRESS, 0L);
    }
    if (body) {
        SETOPT(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        SETOPT(curl, CURLOPT_POSTFIELDS, body);
    }
    if (strcmp(method, "GET") == 0 && !body)
        SETOPT(curl, CURLOPT_HTTPGET, 1L);
    else if (!(strcmp(method, "POST") == 0 && body))
        SETOPT(curl, CURLOPT_CUSTOMREQUEST, method);

    CURLcode rc = curl_easy_perform(curl);
    if (rc != CURLE_OK) {
        if (rc == CURLE_ABORTED_BY_CALLBACK && opts->interrupted && *opts->interrupted) {
            snprintf(err, errlen, "interrupted");
            result = HTTP_CLIENT_INTERRUPTED;
            goto out;
        }
        if (buf.stopped) {
            snprintf(err, errlen, "the receiver stopped the transfer");
            result = HTTP_CLIENT_STOPPED;
            goto out;
        }
        if (buf.too_large)
            snprintf(err, errlen, "the answer is larger than %zu MiB",
                     HTTP_CLIENT_MAX_BODY_BYTES >> 20);
        else if (buf.no_memory || hs.no_memory)
            snprintf(err, errlen, "out of memory while reading the answer");
        else
            snprintf(err, errlen, "%s", curl_err[0] ? curl_err : curl_easy_strerror(rc));
        result = (buf.too_large || buf.no_memory || hs.no_memory) ? HTTP_CLIENT_ERROR
                 : http_client_unreachable(curl, rc)                      ? HTTP_CLIENT_UNREACHABLE
                                                                          : HTTP_CLIENT_FAILED;
        goto out;
    }

    long status = 0;
    char *ctype = NULL;
    if (curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK ||
        curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &ctype) != CURLE_OK) {
        snprintf(err, errlen, "libcurl could not report the answer's status");
        goto out;
    }
    if (ctype) {
        resp->content_type = strdup(ctype);
        if (!resp->content_type) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
    }
    if (!buf.data) {
        buf.data = calloc(1, 1);
        if (!buf.data) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
    }
    resp->status = status;
    resp->body = buf.data;
    resp->body_len = buf.len;
    resp->location = hs.location;
    buf.data = NULL;
    hs.location = NULL;
    result = HTTP_CLIENT_OK;

out:
    if (result != HTTP_CLIENT_OK)
        http_response_free(resp);
    free(buf.data);
    free(hs.location);
    free(auth);
    free(url);
    curl_slist_free_all(headers);
    if (curl)
        curl_easy_cleanup(curl);
    return result;
}

int http_client_request(const struct http_client_opts *opts, const char *method,
                        const char *path, const char *body, size_t body_len,
                        struct http_response *resp, char *err, size_t errlen)
{
    return perform(opts, method, path, body, body_len, NULL, NULL, resp, err, errlen);
}

int http_client_stream(const struct http_client_opts *opts, const char *method, const char *path,
                       const char *body, size_t body_len, http_body_fn on_data, void *ctx,
                       struct http_response *resp, char *err, size_t errlen)
{
    if (!on_data) {
        memset(resp, 0, sizeof *resp);
        snprintf(err, errlen, "http_client_stream needs a body callback");
        return HTTP_CLIENT_ERROR;
    }
    return perform(opts, method, path, body, body_len, on_data, ctx, resp, err, errlen);
}

char *http_client_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    if (n > (SIZE_MAX - 1) / 3)
        return NULL;
    char *out = malloc(n * 3 + 1);
    if (!out)
        return NULL;
    char *p = out;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            *p++ = (char)c;
        } else {
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        }
    }
    *p = '\0';
    return out;
}
