/*
 * log.h - the one logging facility of jetprof.
 *
 * Every module (sensors, cudakern, db, daemon, client) logs through here so a
 * line always says when, how bad and which module. Under systemd (JOURNAL_STREAM
 * set) lines carry the sd-daemon "<N>" priority prefix and no timestamp, because
 * journald adds its own; otherwise they carry an ISO-8601 UTC timestamp.
 * Thread-safe: each line is formatted into one buffer and written with one write(2).
 */
#ifndef JETPROF_LOG_H
#define JETPROF_LOG_H

enum jp_log_level {
    JP_LOG_ERROR = 0,
    JP_LOG_WARN = 1,
    JP_LOG_INFO = 2,
    JP_LOG_DEBUG = 3,
};

/* Lines above this level are dropped. Default JP_LOG_INFO. */
void jp_log_set_level(enum jp_log_level level);
enum jp_log_level jp_log_get_level(void);
/* "error", "warn", "info", "debug" -> 0 and *out set; anything else -> -1. */
int jp_log_level_parse(const char *name, enum jp_log_level *out);
const char *jp_log_level_name(enum jp_log_level level);

void jp_log(enum jp_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(mod, ...) jp_log(JP_LOG_ERROR, (mod), __VA_ARGS__)
#define log_warn(mod, ...) jp_log(JP_LOG_WARN, (mod), __VA_ARGS__)
#define log_info(mod, ...) jp_log(JP_LOG_INFO, (mod), __VA_ARGS__)
#define log_debug(mod, ...) jp_log(JP_LOG_DEBUG, (mod), __VA_ARGS__)

#endif
