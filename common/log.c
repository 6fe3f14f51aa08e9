/*
 * log.c - see log.h. Writes to stderr only: under systemd stderr is the journal.
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_threshold = JP_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
/* sd-daemon(3) priorities: err 3, warning 4, info 6, debug 7 */
static const int level_sd_priority[] = {3, 4, 6, 7};

void jp_log_set_level(enum jp_log_level level) { atomic_store(&log_threshold, (int)level); }

enum jp_log_level jp_log_get_level(void) { return (enum jp_log_level)atomic_load(&log_threshold); }

int jp_log_level_parse(const char *name, enum jp_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (name && strcmp(name, level_names[i]) == 0) {
            *out = (enum jp_log_level)i;
            return 0;
        }
    }
    return -1;
}

const char *jp_log_level_name(enum jp_log_level level)
{
    if ((int)level < 0 || (int)level > 3)
        return "?";
    return level_names[level];
}

void jp_log(enum jp_log_level level, const char *module, const char *fmt, ...)
{
    if ((int)level > atomic_load(&log_threshold))
        return;
    char line[2048];
    size_t used = 0;
    int n;
    if (getenv("JOURNAL_STREAM")) {
        n = snprintf(line, sizeof line, "<%d>%s: ", level_sd_priority[level], module);
    } else {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000L, level_names[level], module);
    }
    if (n > 0)
        used = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    va_list ap;
    va_start(ap, fmt);
    n = vsnprintf(line + used, sizeof line - used, fmt, ap);
    va_end(ap);
    if (n > 0)
        used += (size_t)n < sizeof line - used ? (size_t)n : sizeof line - used - 1;
    if (used >= sizeof line - 1)
        used = sizeof line - 2;
    line[used++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, used);
    (void)w; /* nowhere to report a failed log write */
}
