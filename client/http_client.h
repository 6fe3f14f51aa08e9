/*
 * http_client.h - the jetprof client's one way to talk to jetprofd: a blocking
 * HTTP request over the libcurl easy API, the whole answer kept in memory.
 *
 * jetprof.c builds the requests (commands, JSON bodies, query strings) and
 * decides what to print; this file only moves bytes and says precisely why a
 * request did not get an answer (connection refused, timeout, ...), so the CLI
 * can tell "the daemon said no" (an HTTP status) from "the daemon is not there".
 *
 * Two ways to receive an answer: http_client_request keeps the whole body in
 * memory (JSON documents, a few MiB at most); http_client_stream hands a 2xx
 * body to a callback as it arrives (exports of any size, the endless
 * Server-Sent Events of /v1/power/stream), while an error answer is still kept
 * whole so its problem+json can be reported.
 *
 * Call http_client_global_init() once before the first request and
 * http_client_global_cleanup() once at exit (libcurl's global state).
 */
#ifndef JETPROF_HTTP_CLIENT_H
#define JETPROF_HTTP_CLIENT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

struct http_client_opts {
    const char *base_url;  /* "http://127.0.0.1:9740", no trailing slash */
    const char *token;     /* bearer token, NULL or "" = no Authorization header */
    double timeout_s;      /* whole request; 0 = no limit */
    double connect_timeout_s; /* connection set-up; 0 = libcurl's default */
    /* Longest time without a byte received before the transfer is given up;
     * 0 = no such limit. Meant for streams, which have no end to time. */
    double idle_timeout_s;
    /* When not NULL, the transfer stops (HTTP_CLIENT_INTERRUPTED) soon after
     * *interrupted becomes non-zero, e.g. set by a SIGINT handler: libcurl
     * looks at it at least once a second, also while nothing arrives. */
    const volatile sig_atomic_t *interrupted;
};

struct http_response {
    long status;           /* HTTP status code */
    char *body;            /* NUL-terminated (the NUL is not counted in body_len) */
    size_t body_len;
    char *content_type;    /* NULL when the answer had none */
    char *location;        /* the Location header, NULL when absent */
};

enum http_client_result {
    HTTP_CLIENT_OK = 0,           /* an HTTP answer arrived (any status) */
    HTTP_CLIENT_UNREACHABLE = -1, /* no connection: refused, unresolvable, connect timeout */
    HTTP_CLIENT_FAILED = -2,      /* connected, but no complete answer (timeout, reset, ...) */
    HTTP_CLIENT_ERROR = -3,       /* local failure: out of memory, libcurl set-up */
    HTTP_CLIENT_STOPPED = -4,     /* http_client_stream: the callback asked to stop */
    HTTP_CLIENT_INTERRUPTED = -5, /* *opts->interrupted became non-zero */
};

int http_client_global_init(char *err, size_t errlen);

/* For code that drives libcurl itself (the fleet's multi transfers): whether a
 * failed transfer on the easy handle `easy` (a CURL *) with result curl_code (a
 * CURLcode) never reached the daemon - refused, unresolvable, a malformed URL, or
 * a time-out before the connection was made - rather than failing after it. */
bool http_client_unreachable(void *easy, int curl_code);
void http_client_global_cleanup(void);

/*
 * Sends METHOD base_url+path (path starts with '/' and is already URL-encoded)
 * with body (may be NULL; sent as application/json) and fills *resp.
 * Returns an http_client_result; on anything but HTTP_CLIENT_OK, err holds
 * libcurl's detailed message and *resp is empty. The caller frees *resp with
 * http_response_free in every case.
 */
int http_client_request(const struct http_client_opts *opts, const char *method,
                        const char *path, const char *body, size_t body_len,
                        struct http_response *resp, char *err, size_t errlen);

/*
 * Receives one chunk of a 2xx answer's body: 0 to go on, non-zero to stop the
 * transfer (http_client_stream then returns HTTP_CLIENT_STOPPED).
 */
typedef int (*http_body_fn)(void *ctx, const char *data, size_t len);

/*
 * Like http_client_request, but the body of a 2xx answer goes to on_data as
 * it arrives, never kept: on HTTP_CLIENT_OK with a 2xx status, resp->body is
 * empty and the body was delivered whole. The body of any other status is
 * kept in resp->body (the problem document). On HTTP_CLIENT_STOPPED and
 * HTTP_CLIENT_INTERRUPTED part of the body may have been delivered.
 */
int http_client_stream(const struct http_client_opts *opts, const char *method, const char *path,
                       const char *body, size_t body_len, http_body_fn on_data, void *ctx,
                       struct http_response *resp, char *err, size_t errlen);

void http_response_free(struct http_response *resp);

/* URL-encodes s (RFC 3986 unreserved characters kept). malloc'd, NULL on no memory. */
char *http_client_escape(const char *s);

#endif
