/*
 * http.h - jetprofd's HTTP server (libmicrohttpd, thread pool): routing, body
 * limits, auth, problem+json errors, and suspend/resume for handlers that answer
 * when a job is done. Handlers live in api_<resource>.c.
 */
#ifndef JETPROF_HTTP_H
#define JETPROF_HTTP_H

#include <stdint.h>

#include "app.h"

struct http_server;

/* Binds cfg->listen (port 0 = ephemeral) and starts the thread pool.
 * *port_out receives the bound port. 0 or -1 with err. */
int http_start(struct app *app, struct http_server **out, uint16_t *port_out, char *err,
               size_t errlen);
/* Answers every suspended request (503, shutting down), stops the pool. */
void http_stop(struct http_server *srv);

#endif
