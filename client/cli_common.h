/*
 * cli_common.h - what every jetprof command shares (jetprof.c and the fleet
 * commands: fleet.c, fleet_hosts.c, fleet_pull.c, offline_train.c), so that
 * the same text means the same thing everywhere and is refused with the same
 * words:
 *   - messages: "PREFIX: what went wrong" on stderr, and for usage errors the
 *     "Try '... --help'" line after it;
 *   - the daemon address rules (--host/--url, $JETPROF_HOST, a hosts file's
 *     URL column) and the bearer token file (--token-file, $JETPROF_TOKEN_FILE,
 *     a hosts file's TOKEN_FILE column);
 *   - reading a file or standard input ("-") whole, optionally as JSON or as a
 *     sweep (the body of POST /v1/jobs);
 *   - parsing numbers strictly (the whole string, nothing around it);
 *   - small pieces of the terminal output: durations, JSON integer members,
 *     the terminal's width, an interruptible sleep, a monotonic clock.
 *
 * Functions that can fail for a reason the user must see either print it
 * (the message helpers) or put it in a caller's buffer (err, errlen; size it
 * CLI_ERR_MAX) without a prefix, so each command prints it under its own
 * ("jetprof: ", "jetprof fleet: ", "FILE:LINE: ").
 */
#ifndef JETPROF_CLI_COMMON_H
#define JETPROF_CLI_COMMON_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define CLI_DEFAULT_PORT 9740
#define CLI_DEFAULT_HTTPS_PORT 443
#define CLI_TOKEN_MAX_BYTES 4096
/* Enough for any message below with a path of PATH_MAX bytes in it. */
#define CLI_ERR_MAX 4608

/* ---- messages ---- */

/* "PREFIX: <fmt ...>\n" on stderr. */
void cli_fail(const char *prefix, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "PREFIX: <fmt ...>\nTry 'HELP_CMD' for more information.\n" on stderr. */
void cli_usage_error(const char *prefix, const char *help_cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The reason phrase of an HTTP status ("Conflict"), "HTTP error" when unknown. */
const char *cli_reason_phrase(long status);

/*
 * A jetprofd answer that is not a success, on stderr as cli_fail does:
 * "PREFIX: [WHAT: ]<status> <title>: <detail>[ (job N)]" from a problem+json
 * document (the title from the status when it has none), the first line of
 * the body (at most 200 bytes) when the answer is not a JSON object, else
 * "<status> <title>"; a 401 adds a line on the token options. what may be NULL.
 */
void cli_report_http_error(const char *prefix, const char *what, long status, const char *body,
                           size_t body_len);

/* ---- the daemon's address and the token ---- */

/*
 * The daemon's address as the user wrote it ("host", "host:port", "[::1]:port",
 * "http://host:port/prefix", "https://host") -> the base URL requests are made
 * against, "scheme://host:port[/prefix]", malloc'd in *out. The port defaults
 * to 9740 (443 for https). token_where completes the reason given for an
 * address with a user name in it: "(the token goes in <token_where>)".
 * Returns 0, -1 with the reason in err (a usage error), or -2 out of memory.
 */
int cli_parse_address(const char *text, const char *token_where, char **out, char *err,
                      size_t errlen);

/*
 * The token in the file at path: its content without trailing blanks and
 * newlines, one line of printable characters without blanks, not empty, at
 * most CLI_TOKEN_MAX_BYTES. 0 with *out malloc'd; -1 with the reason in err
 * ("cannot read token file PATH: ...", "token file PATH is empty", ...).
 */
int cli_read_token(const char *path, char **out, char *err, size_t errlen);

/* ---- files ---- */

/* How messages name path: "standard input" for "-", else path itself. */
const char *cli_input_name(const char *path);

/*
 * Reads path ("-" = standard input) whole, NUL-terminated (the NUL not
 * counted in *out_len); a file that does not fit in max_bytes with its NUL
 * is refused ("NAME is larger than N MiB"). 0 with *out malloc'd; -1 with the
 * reason in err (the file cannot be opened or read, is too large, or there is
 * no memory).
 */
int cli_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len, char *err,
                  size_t errlen);

/*
 * cli_read_file, then the text parsed as one JSON document (any value) into
 * *doc; the text is kept in *text (for sending as it is). 0 with both set;
 * -1 the file cannot be read (a usage error); -2 it is not valid JSON
 * ("NAME:LINE:COLUMN: not valid JSON: ..."); the reason in err, nothing to free.
 */
int cli_read_json(const char *path, size_t max_bytes, char **text, size_t *len, json_t **doc,
                  char *err, size_t errlen);

/* cli_read_json for a sweep (the body of POST /v1/jobs): -2 also when the
 * document is valid JSON but not an object. */
int cli_read_sweep(const char *path, size_t max_bytes, char **text, size_t *len, json_t **doc,
                   char *err, size_t errlen);

/* Writes all of data to fd, again after EINTR. 0 or -1 (errno set). */
int cli_write_all(int fd, const char *data, size_t len);

/* ---- numbers ---- */

/* Strict base-10 integer: the whole string, no blanks, within int64. */
bool cli_parse_int64(const char *s, int64_t *out);

/* Matches argv[*i] against option `name` ("--url URL" or "--url=URL"): 1 with
 * *val set (and *i advanced past a separate value), 0 when argv[*i] is not
 * this option, -1 when the value is missing (a usage error printed with
 * prefix and help_cmd, as cli_usage_error does). */
int cli_take_option(int argc, char **argv, int *i, const char *name, const char **val,
                    const char *prefix, const char *help_cmd);

/* A finite real number (strtod's syntax): the whole string, nothing after it. */
bool cli_parse_real(const char *s, double *out);

/* ---- output and time ---- */

/* "45s", "3m07s", "2h05m", "3d04h"; "-" for what is not a duration. Returns buf. */
const char *cli_format_duration(char *buf, size_t len, double seconds);

/* The integer member name of obj; 0 when obj has none (or is not an object). */
json_int_t cli_int_member(const json_t *obj, const char *name);

/* Columns of the terminal behind fd, 80 when it does not say. */
int cli_terminal_columns(int fd);

/* CLOCK_MONOTONIC in seconds. */
double cli_monotonic_s(void);

/* Sleeps ms milliseconds, or less once *stop (may be NULL) is non-zero: jetprof's
 * SIGINT/SIGTERM handler has no SA_RESTART, so nanosleep returns with EINTR. */
void cli_sleep_ms(long ms, const volatile sig_atomic_t *stop);

#endif
