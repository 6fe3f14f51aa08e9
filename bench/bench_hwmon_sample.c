/*
 * bench_hwmon_sample.c - cost of one sample through the ina3221-hwmon backend
 * on a fixture tree (the software side of a read: pread of every rail's
 * in<N>_input and curr<N>_input, parsing, the power product).
 *
 *   bench_hwmon_sample [fixture [reads]]     defaults: agx-orin 20000
 *
 * The fixture (a name under tests/fixtures/sysfs/ or a path) is copied into a
 * mkdtemp directory, the backend is opened there with no sampling request (so
 * nothing is written), and each of `reads` samples is timed on its own with
 * CLOCK_MONOTONIC after a warm-up. Prints the machine, the command, and the
 * median / p10 / p90 / min / mean in ns per sample and per file read.
 * On a board every read is also an I2C transaction of the driver's (a few
 * hundred us for a whole sample); that is not in this figure.
 */
#include <errno.h>
#include <ftw.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_machine.h"
#include "common/clock.h"
#include "common/log.h"
#include "sensors/sensor.h"

extern const struct sensor_backend sensor_backend_ina3221_hwmon;
extern char **environ;

#define WARMUP_READS 1000

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int main(int argc, char **argv)
{
    const char *fixture = argc > 1 ? argv[1] : "agx-orin";
    long reads = argc > 2 ? strtol(argv[2], NULL, 10) : 20000;
    if (argc > 3 || reads < 1 || reads > 100000000) {
        fprintf(stderr, "usage: %s [fixture [reads]]   (reads 1..100000000)\n", argv[0]);
        return 2;
    }
    jp_log_set_level(JP_LOG_WARN);

    char src[1024];
    if (strchr(fixture, '/'))
        snprintf(src, sizeof src, "%s/.", fixture);
    else
        snprintf(src, sizeof src, "tests/fixtures/sysfs/%s/.", fixture);
    char root[] = "/tmp/jetprof-bench-hwmon.XXXXXX";
    if (mkdtemp(root) == NULL) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    char *cp_argv[] = {"cp", "-a", "--", src, root, NULL};
    pid_t pid;
    int st = 0;
    if (posix_spawnp(&pid, "cp", NULL, NULL, cp_argv, environ) != 0 ||
        waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "cannot copy %s (run from the repository root)\n", src);
        nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        return 1;
    }

    int rc = 1;
    int64_t *ns = malloc((size_t)reads * sizeof *ns);
    struct sensor s;
    memset(&s, 0, sizeof s);
    s.backend = &sensor_backend_ina3221_hwmon;
    s.board_input_rail = -1;
    struct sensor_options o = {0};
    o.sysfs_root = root;
    char err[256];
    if (ns == NULL) {
        fprintf(stderr, "out of memory\n");
        goto out;
    }
    if (s.backend->open(&s, &o, err, sizeof err) != 0) {
        fprintf(stderr, "open: %s\n", err);
        goto out;
    }
    struct sensor_sample smp;
    for (int i = 0; i < WARMUP_READS; i++) {
        if (s.backend->read(&s, &smp, err, sizeof err) != 0) {
            fprintf(stderr, "read: %s\n", err);
            s.backend->close(&s);
            goto out;
        }
    }
    for (long i = 0; i < reads; i++) {
        int64_t t0 = clock_mono_ns();
        int r = s.backend->read(&s, &smp, err, sizeof err);
        int64_t t1 = clock_mono_ns();
        if (r != 0) {
            fprintf(stderr, "read: %s\n", err);
            s.backend->close(&s);
            goto out;
        }
        ns[i] = t1 - t0;
    }
    unsigned rails = s.rail_count;
    s.backend->close(&s);

    qsort(ns, (size_t)reads, sizeof *ns, cmp_i64);
    double sum = 0.0;
    for (long i = 0; i < reads; i++)
        sum += (double)ns[i];
    int64_t median = ns[reads / 2];

    bench_print_machine();
    printf("command:");
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n");
    printf("fixture: %s (%u rails, %u files per sample), %ld reads after %d warm-up\n",
           fixture, rails, 2 * rails, reads, WARMUP_READS);
    printf("one sample through ina3221-hwmon: median %lld ns, p10 %lld ns, p90 %lld ns, "
           "min %lld ns, mean %.0f ns; median per file %.0f ns\n",
           (long long)median, (long long)ns[reads / 10], (long long)ns[reads * 9 / 10],
           (long long)ns[0], sum / (double)reads, (double)median / (2.0 * rails));
    rc = 0;
out:
    free(ns);
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}
