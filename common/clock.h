/*
 * clock.h - monotonic and wall-clock helpers shared by all modules.
 * Every timestamp that is compared with a power sample is CLOCK_MONOTONIC in ns.
 */
#ifndef JETPROF_CLOCK_H
#define JETPROF_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Sleep until the absolute CLOCK_MONOTONIC time t_ns (restarts after signals). */
void clock_sleep_until_ns(int64_t t_ns);

/* Format the current UTC wall time as "2026-11-22T23:59:01.123Z" into buf (>= 32 bytes). */
void clock_utc_iso8601(char *buf, unsigned long buflen);

#endif
