/*
 * fleet_hosts.h - what every `jetprof fleet` command shares: the hosts file
 * (which boards make up the shelf) and one concurrent request helper (libcurl
 * multi) that asks N boards at once, each request with its own time-outs, so
 * that one dead board costs one time-out, not N, and never a hang.
 *
 * The hosts file (--hosts FILE, else $JETPROF_HOSTS): one board per line,
 *
 *     URL [NAME [TOKEN_FILE]]
 *
 * separated by blanks; '#' starts a comment (a whole line, or after a blank);
 * blank lines are skipped. URL is what `jetprof --host` takes ("host",
 * "host:port", "[v6]:port", an http(s) URL with an optional path prefix; port
 * 9740 when none is given). NAME ([A-Za-z0-9._:-], at most 63 characters,
 * unique) is what tables and messages call the board; "-" or nothing: the
 * URL's host:port. TOKEN_FILE holds the bearer token for that board (read as
 * `jetprof --token-file` reads it: one line of printable characters); a
 * relative path is taken from the hosts file's directory, "~/" from $HOME.
 * Every mistake is reported as "FILE:LINE: what is wrong".
 *
 * Addresses and token files are read with the CLI's own rules
 * (cli_parse_address, cli_read_token in cli_common.h): the same text means
 * the same board everywhere.
 */
#ifndef JETPROF_FLEET_HOSTS_H
#define JETPROF_FLEET_HOSTS_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define FLEET_NAME_MAX 64   /* a board's name, NUL included */

struct fleet_host {
    char *url;        /* normalised base URL, "http://host:port[/prefix]" */
    char *name;       /* NAME, or the URL's host:port[/prefix] */
    char *token_file; /* absolute (resolved) path; NULL = no token */
    char *token;      /* the token read from token_file; NULL = none */
    unsigned line;    /* line of the hosts file (0: not from one) */
};

struct fleet_hosts {
    char *path;               /* the hosts file as named */
    struct fleet_host *hosts; /* in the file's order */
    size_t count;             /* >= 1 after a successful load */
};

/*
 * Reads and checks the hosts file at path, reading every token file it names.
 * Returns 0; -1 with err "PATH:LINE: ..." (or "PATH: ...") for a file that
 * cannot be read, a bad line, a duplicate URL or name, an unreadable token
 * file, or a file with no board (a usage error: exit 2); -2 out of memory.
 */
int fleet_hosts_load(const char *path, struct fleet_hosts *out, char *err, size_t errlen);
void fleet_hosts_free(struct fleet_hosts *h);
void fleet_host_free(struct fleet_host *h); /* the strings of one entry */

/*
 * The hosts file named by --hosts (hosts_flag, may be NULL), else $JETPROF_HOSTS;
 * NULL with a message in err when neither names one.
 */
const char *fleet_hosts_path(const char *hosts_flag, char *err, size_t errlen);

/* The name a board gets when the hosts file gives none: the URL without its
 * scheme ("10.0.0.7:9740", "lab.example:443/jetprof"). malloc'd, NULL on no memory. */
char *fleet_default_name(const char *url);

/* ---- concurrent requests ---- */

struct fleet_request {
    const char *base_url;     /* a board's URL (fleet_host.url); NULL: no request, skipped */
    const char *token;        /* bearer token, NULL = none */
    const char *method;       /* "GET", "POST", "DELETE" */
    const char *path;         /* "/v1/health": starts with '/', already URL-encoded */
    const char *body;         /* sent as application/json; NULL = none */
    size_t body_len;
    double timeout_s;         /* the whole request; must be > 0 (fleet never waits forever) */
    double connect_timeout_s; /* connection set-up; 0 = timeout_s */
};

struct fleet_result {
    int rc;           /* an enum http_client_result (http_client.h): HTTP_CLIENT_OK when an
                         answer arrived, whatever its status */
    long status;      /* the HTTP status when rc == HTTP_CLIENT_OK */
    char *body;       /* NUL-terminated answer (rc == HTTP_CLIENT_OK), else NULL */
    size_t body_len;
    double elapsed_s; /* from the start of the round to this request's end */
    char err[256];    /* why there is no answer (rc != HTTP_CLIENT_OK) */
};

/*
 * Sends the n requests at once (one libcurl multi handle, one connection per
 * request) and fills results[i] for reqs[i]; a request with base_url NULL is
 * skipped (results[i].rc = HTTP_CLIENT_ERROR, err "not requested"). Returns
 * when every request has an answer or gave up at its time-out, or soon
 * (within ~0.2 s) after *interrupted (may be NULL) becomes non-zero: the
 * requests still under way then end with HTTP_CLIENT_INTERRUPTED.
 * Returns 0, HTTP_CLIENT_INTERRUPTED when interrupted, or -1 with err for a
 * local failure (out of memory, libcurl set-up: no result is meaningful).
 * Free the results with fleet_results_free in every case.
 */
int fleet_request_all(const struct fleet_request *reqs, size_t n, struct fleet_result *results,
                      const volatile sig_atomic_t *interrupted, char *err, size_t errlen);
void fleet_results_free(struct fleet_result *results, size_t n);

/* True when r is a 2xx answer. */
bool fleet_result_ok(const struct fleet_result *r);

/* The answer as a JSON object when r is a 2xx answer whose body is one; else
 * NULL (a new reference otherwise). */
json_t *fleet_result_object(const struct fleet_result *r);

/*
 * One line saying why r is not a usable answer: "unreachable: Failed to
 * connect ...", "no answer: Operation timed out after 10000 ms ...",
 * "401 Unauthorized: <the problem's detail> (needs the board's token file)",
 * "answer is not JSON". For a 2xx JSON answer: "ok".
 */
void fleet_result_problem(const struct fleet_result *r, char *buf, size_t len);

/* `jetprof fleet --help` (fleet.c); the jetprof command table points at it. */
extern const char fleet_help_text[];

#endif
