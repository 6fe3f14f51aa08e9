/*
 * bench_machine.h - the "machine:" line every benchmark prints, so a figure is
 * never quoted without the machine it came from (BENCHMARKS.md). Header-only:
 * each bench is one program built from one .c file.
 */
#ifndef JETPROF_BENCH_MACHINE_H
#define JETPROF_BENCH_MACHINE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

/* "model name" from /proc/cpuinfo (x86), "Model" (arm64), else "unknown CPU". */
static inline void bench_cpu_model(char *out, size_t outlen)
{
    snprintf(out, outlen, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f == NULL)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0 && strncmp(line, "Model", 5) != 0)
            continue;
        const char *colon = strchr(line, ':');
        if (colon == NULL)
            continue;
        colon++;
        while (*colon == ' ' || *colon == '\t')
            colon++;
        snprintf(out, outlen, "%s", colon);
        out[strcspn(out, "\n")] = '\0';
        break;
    }
    fclose(f);
}

/* "machine: Linux 6.18.44 x86_64, AMD EPYC, 2 online CPUs" */
static inline void bench_print_machine(void)
{
    struct utsname u;
    if (uname(&u) != 0)
        memset(&u, 0, sizeof u);
    char cpu[256];
    bench_cpu_model(cpu, sizeof cpu);
    printf("machine: %s %s %s, %s, %ld online CPUs\n", u.sysname, u.release, u.machine, cpu,
           sysconf(_SC_NPROCESSORS_ONLN));
}

/* The 1-minute load average (-1 when unreadable): other work on the machine is
 * noise in every timing, so the benches print it beside their figures. */
static inline double bench_load_1min(void)
{
    double load = -1.0;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &load) != 1)
            load = -1.0;
        fclose(f);
    }
    return load;
}

/* qsort order for doubles. */
static inline int bench_compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#endif
