/*
 * http.h - jetprofd's HTTP server (libmicrohttpd, thread pool): routing, body
 * limits, auth, problem+json errors, and suspend/resume for handlers that answer
 * when a job is done. Handlers live in api_<resource>.c.
 *
 * Auth: the server keeps its own copy of the bearer token and of
 * server.auth_reads, under a lock, so SIGHUP can replace both while requests
 * are being served (http_set_auth); the token file is read by http_token_read.
 */
#ifndef JETPROF_HTTP_H
#define JETPROF_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "app.h"

#define HTTP_TOKEN_MAX 256 /* bytes with the NUL; = sizeof app.token */

struct http_server;
struct api_route;

/* Binds cfg->listen (port 0 = ephemeral) and starts the thread pool.
 * *port_out receives the bound port. 0 or -1 with err. */
int http_start(struct app *app, struct http_server **out, uint16_t *port_out, char *err,
               size_t errlen);
/* Answers every suspended request (503, shutting down), stops the pool. */
void http_stop(struct http_server *srv);

/* Replaces the token ("" = auth off) and server.auth_reads for the requests
 * that arrive from now on. Safe while the server runs. */
void http_set_auth(struct http_server *srv, const char *token, bool auth_reads);

/* Does a request on route need the bearer token (when one is configured)?
 * Mutating routes always; with auth_reads every route but GET /v1/health, which
 * liveness probes reach without a secret (it tells only version and uptime). */
bool http_route_needs_token(const struct api_route *route, bool auth_reads);

/*
 * Reads the bearer token from path: the whole file, surrounding whitespace
 * (the trailing newline) trimmed; it must be one word of printable ASCII that
 * fits in toklen. A file that cannot be read, is not a regular file, is empty or
 * holds anything else is an error naming the file. warn receives a warning (""
 * when none): the file is accessible to group or others (mode & 077), where
 * install creates it 0600. 0, or -1 with err.
 */
int http_token_read(const char *path, char *token, size_t toklen, char *warn, size_t warnlen,
                    char *err, size_t errlen);

#endif
