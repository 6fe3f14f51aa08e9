/*
 * http_client.h - the jetprof client's one way to talk to jetprofd: a blocking
 * HTTP request over the libcurl easy API, the whole answer kept in memory.
 *
 * jetprof.c builds the requests (commands, JSON bodies, query strings) and
 * decides what to print; this file only moves bytes and says precisely why a
 * request did not get an answer (connection refused, timeout, ...), so the CLI
 * can tell "the daemon said no" (an HTTP status) from "the daemon is not there".
 *
 * Call http_client_global_init() once before the first request and
 * http_client_global_cleanup() once at exit (libcurl's global state).
 */
#ifndef JETPROF_HTTP_CLIENT_H
#define JETPROF_HTTP_CLIENT_H

#include <stddef.h>

struct http_client_opts {
    const char *base_url;  /* "http://127.0.0.1:9740", no trailing slash */
    const char *token;     /* bearer token, NULL or "" = no Authorization header */
    double timeout_s;      /* whole request; 0 = no limit */
    double connect_timeout_s; /* connection set-up; 0 = libcurl's default */
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
};

int http_client_global_init(char *err, size_t errlen);
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

void http_response_free(struct http_response *resp);

/* URL-encodes s (RFC 3986 unreserved characters kept). malloc'd, NULL on no memory. */
char *http_client_escape(const char *s);

#endif
