/*
 * cli_common.c - what every jetprof command shares: messages, the daemon
 * address rules, the token file, reading a file or standard input whole,
 * strict numbers, durations and other small pieces of terminal output (see
 * cli_common.h).
 */
#include "cli_common.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

/* ---- messages ---- */

void cli_fail(const char *prefix, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prefix);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void cli_usage_error(const char *prefix, const char *help_cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prefix);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s' for more information.\n", help_cmd);
}

/* ---- the daemon's address and the token ---- */

int cli_parse_address(const char *text, const char *token_where, char **out, char *err,
                      size_t errlen)
{
    const char *p = text, *end = text + strlen(text);
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (p == end) {
        snprintf(err, errlen, "the address is empty");
        return -1;
    }
    const char *scheme = "http";
    const char *sep = strstr(p, "://");
    if (sep && sep < end) {
        size_t n = (size_t)(sep - p);
        if (n == 4 && strncasecmp(p, "http", 4) == 0) {
            scheme = "http";
        } else if (n == 5 && strncasecmp(p, "https", 5) == 0) {
            scheme = "https";
        } else {
            snprintf(err, errlen, "the scheme must be http or https (got '%.*s')",
                     (int)(n > 16 ? 16 : n), p);
            return -1;
        }
        p = sep + 3;
    }
    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *auth_end = slash ? slash : end;
    for (const char *c = p; c < end; c++) {
        unsigned char u = (unsigned char)*c;
        if (u <= 0x20 || u == 0x7f) {
            snprintf(err, errlen, "blanks and control characters are not allowed");
            return -1;
        }
        if (u == '?' || u == '#') {
            snprintf(err, errlen, "a query or fragment ('%c') is not allowed", u);
            return -1;
        }
        if (u == '@' && c < auth_end) {
            snprintf(err, errlen, "a user name is not allowed (the token goes in %s)",
                     token_where);
            return -1;
        }
    }
    const char *host = p, *host_end, *port_text = NULL;
    if (*p == '[') {
        const char *close = memchr(p, ']', (size_t)(auth_end - p));
        if (!close) {
            snprintf(err, errlen, "'[' without ']' around an IPv6 address");
            return -1;
        }
        host_end = close + 1;
        if (host_end < auth_end && *host_end != ':') {
            snprintf(err, errlen, "only ':PORT' may follow ']'");
            return -1;
        }
        if (close == p + 1) {
            snprintf(err, errlen, "no host name");
            return -1;
        }
    } else {
        const char *colon = memchr(p, ':', (size_t)(auth_end - p));
        if (colon && memchr(colon + 1, ':', (size_t)(auth_end - colon - 1))) {
            snprintf(err, errlen, "an IPv6 address goes in brackets, e.g. [::1]:9740");
            return -1;
        }
        host_end = colon ? colon : auth_end;
        if (host_end == host) {
            snprintf(err, errlen, "no host name");
            return -1;
        }
    }
    if (host_end < auth_end)
        port_text = host_end + 1; /* after ':' */
    long port = strcmp(scheme, "https") == 0 ? CLI_DEFAULT_HTTPS_PORT : CLI_DEFAULT_PORT;
    if (port_text) {
        size_t n = (size_t)(auth_end - port_text);
        port = 0;
        for (size_t i = 0; i < n && port <= 65535; i++) {
            if (port_text[i] < '0' || port_text[i] > '9') {
                port = -1;
                break;
            }
            port = port * 10 + (port_text[i] - '0');
        }
        if (n == 0 || port < 1 || port > 65535) {
            snprintf(err, errlen, "the port '%.*s' is not a number in [1, 65535]",
                     (int)(n > 16 ? 16 : n), port_text);
            return -1;
        }
    }
    const char *prefix = slash ? slash : end;
    const char *prefix_end = end;
    while (prefix_end > prefix && prefix_end[-1] == '/')
        prefix_end--;
    size_t len = strlen(scheme) + 3 + (size_t)(host_end - host) + 8 +
                 (size_t)(prefix_end - prefix) + 1;
    char *url = malloc(len);
    if (!url)
        return -2;
    snprintf(url, len, "%s://%.*s:%ld%.*s", scheme, (int)(host_end - host), host, port,
             (int)(prefix_end - prefix), prefix);
    *out = url;
    return 0;
}

int cli_read_token(const char *path, char **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read token file %s: %s", path, strerror(errno));
        return -1;
    }
    char *buf = malloc(CLI_TOKEN_MAX_BYTES + 1);
    if (!buf) {
        fclose(f);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t n = fread(buf, 1, CLI_TOKEN_MAX_BYTES + 1, f);
    int read_error = ferror(f);
    int saved_errno = errno;
    fclose(f);
    if (read_error) {
        snprintf(err, errlen, "cannot read token file %s: %s", path, strerror(saved_errno));
        free(buf);
        return -1;
    }
    if (n > CLI_TOKEN_MAX_BYTES) {
        snprintf(err, errlen, "token file %s is larger than %d bytes", path,
                 CLI_TOKEN_MAX_BYTES);
        free(buf);
        return -1;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
                     buf[n - 1] == '\t'))
        n--;
    buf[n] = '\0';
    if (n == 0) {
        snprintf(err, errlen, "token file %s is empty", path);
        free(buf);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c < 0x21 || c > 0x7e) {
            snprintf(err, errlen,
                     "token file %s: the token must be one line of printable characters "
                     "without blanks (byte %zu is 0x%02x)",
                     path, i + 1, c);
            free(buf);
            return -1;
        }
    }
    *out = buf;
    return 0;
}

/* ---- files ---- */

const char *cli_input_name(const char *path)
{
    return strcmp(path, "-") == 0 ? "standard input" : path;
}

int cli_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len, char *err,
                  size_t errlen)
{
    bool is_stdin = strcmp(path, "-") == 0;
    const char *shown = cli_input_name(path);
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", shown, strerror(errno));
        return -1;
    }
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    int rc = -1;
    if (!buf) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (;;) {
        if (cap - len < 2) {
            if (cap >= max_bytes) {
                snprintf(err, errlen, "%s is larger than %zu MiB", shown, max_bytes >> 20);
                goto out;
            }
            char *p = realloc(buf, cap * 2);
            if (!p) {
                snprintf(err, errlen, "out of memory reading %s", shown);
                goto out;
            }
            buf = p;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "cannot read %s: %s", shown, strerror(errno));
        goto out;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    if (!is_stdin)
        fclose(f);
    return rc;
}

int cli_read_json(const char *path, size_t max_bytes, char **text, size_t *len, json_t **doc,
                  char *err, size_t errlen)
{
    if (cli_read_file(path, max_bytes, text, len, err, errlen) != 0)
        return -1;
    json_error_t jerr;
    *doc = json_loadb(*text, *len, 0, &jerr);
    if (!*doc) {
        snprintf(err, errlen, "%s:%d:%d: not valid JSON: %s", cli_input_name(path), jerr.line,
                 jerr.column, jerr.text);
        free(*text);
        *text = NULL;
        return -2;
    }
    return 0;
}

int cli_read_sweep(const char *path, size_t max_bytes, char **text, size_t *len, json_t **doc,
                   char *err, size_t errlen)
{
    int rc = cli_read_json(path, max_bytes, text, len, doc, err, errlen);
    if (rc == 0 && !json_is_object(*doc)) {
        snprintf(err, errlen,
                 "%s: a sweep is a JSON object ({\"configs\": [...]} or {\"sweep\": {...}})",
                 cli_input_name(path));
        json_decref(*doc);
        *doc = NULL;
        free(*text);
        *text = NULL;
        return -2;
    }
    return rc;
}

int cli_write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, data, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += w;
        len -= (size_t)w;
    }
    return 0;
}

/* ---- numbers ---- */

bool cli_parse_int64(const char *s, int64_t *out)
{
    if (!s || !*s)
        return false;
    const char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    if (*p < '0' || *p > '9')
        return false;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = (int64_t)v;
    return true;
}

bool cli_parse_real(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v))
        return false;
    *out = v;
    return true;
}

/* ---- output and time ---- */

const char *cli_format_duration(char *buf, size_t len, double seconds)
{
    if (!isfinite(seconds) || seconds < 0 || seconds > 1e12) {
        snprintf(buf, len, "-");
        return buf;
    }
    long long s = (long long)(seconds + 0.5);
    if (s < 60)
        snprintf(buf, len, "%llds", s);
    else if (s < 3600)
        snprintf(buf, len, "%lldm%02llds", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, len, "%lldh%02lldm", s / 3600, s % 3600 / 60);
    else
        snprintf(buf, len, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
    return buf;
}

json_int_t cli_int_member(const json_t *obj, const char *name)
{
    const json_t *v = json_object_get(obj, name);
    return json_is_integer(v) ? json_integer_value(v) : 0;
}

int cli_terminal_columns(int fd)
{
    struct winsize ws;
    if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 80;
}

double cli_monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void cli_sleep_ms(long ms, const volatile sig_atomic_t *stop)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (!(stop && *stop) && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int cli_take_option(int argc, char **argv, int *i, const char *name, const char **val,
                    const char *prefix, const char *help_cmd)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }
    if (a[n] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        cli_usage_error(prefix, help_cmd, "option %s needs a value", name);
        return -1;
    }
    *i += 1;
    *val = argv[*i];
    return 1;
}

const char *cli_reason_phrase(long status)
{
    static const struct {
        long status;
        const char *phrase;
    } phrases[] = {
        {400, "Bad Request"},          {401, "Unauthorized"},
        {403, "Forbidden"},            {404, "Not Found"},
        {405, "Method Not Allowed"},   {408, "Request Timeout"},
        {409, "Conflict"},             {413, "Content Too Large"},
        {415, "Unsupported Media Type"}, {422, "Unprocessable Content"},
        {429, "Too Many Requests"},    {500, "Internal Server Error"},
        {502, "Bad Gateway"},          {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
    };
    for (size_t i = 0; i < sizeof phrases / sizeof phrases[0]; i++)
        if (phrases[i].status == status)
            return phrases[i].phrase;
    return "HTTP error";
}

void cli_report_http_error(const char *prefix, const char *what, long status, const char *body,
                           size_t body_len)
{
    json_t *root = body ? json_loadb(body, body_len, 0, NULL) : NULL;
    const char *title = NULL, *detail = NULL;
    if (json_is_object(root)) {
        title = json_string_value(json_object_get(root, "title"));
        detail = json_string_value(json_object_get(root, "detail"));
    }
    if (!title || !*title)
        title = cli_reason_phrase(status);
    const char *sep = what ? ": " : "";
    what = what ? what : "";
    if (detail && *detail) {
        json_t *job = json_object_get(root, "job_id");
        if (json_is_integer(job))
            cli_fail(prefix, "%s%s%ld %s: %s (job %" JSON_INTEGER_FORMAT ")", what, sep, status,
                     title, detail, json_integer_value(job));
        else
            cli_fail(prefix, "%s%s%ld %s: %s", what, sep, status, title, detail);
    } else if (!json_is_object(root) && body_len > 0) {
        /* not a problem document: show the first line of what came back */
        size_t n = strcspn(body, "\r\n");
        if (n > 200)
            n = 200;
        cli_fail(prefix, "%s%s%ld %s: %.*s", what, sep, status, title, (int)n, body);
    } else {
        cli_fail(prefix, "%s%s%ld %s", what, sep, status, title);
    }
    if (status == 401)
        fprintf(stderr,
                "%s: this daemon wants a bearer token: pass --token-file PATH or set "
                "JETPROF_TOKEN_FILE\n",
                prefix);
    json_decref(root);
}
