/*
 * sysfs_attr.c - sysfs attribute and discovery helpers for the kernel-driver
 * power backends (sysfs_attr.h): globbing a driver's device directories,
 * opening, reading and writing attributes.
 *
 * Every read is a pread at offset 0 retried on EINTR: a sysfs attribute is
 * regenerated from the start on each read, and the sampler thread may take a
 * signal mid-read. Trailing whitespace and NULs are cut because drivers end
 * their text with "\n" (and some pad with NULs).
 */
#include "sysfs_attr.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* glob metacharacters; a sysfs_root must match itself, not a pattern */
#define GLOB_META "*?[]\\"

int sysfs_attr_open(const char *dir, const char *name, int flags)
{
    char path[PATH_MAX + 64];
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return open(path, flags | O_CLOEXEC);
}

ssize_t sysfs_attr_pread(int fd, void *buf, size_t len)
{
    ssize_t n;
    do {
        n = pread(fd, buf, len, 0);
    } while (n < 0 && errno == EINTR);
    return n;
}

long sysfs_attr_pread_text(int fd, char *buf, size_t buflen)
{
    ssize_t n = sysfs_attr_pread(fd, buf, buflen - 1);
    if (n < 0)
        return -1;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ' || buf[n - 1] == '\r' ||
                     buf[n - 1] == '\t' || buf[n - 1] == '\0'))
        n--;
    buf[n] = '\0';
    return (long)n;
}

int sysfs_attr_pread_long(int fd, long *out, char *why, size_t whylen)
{
    char buf[64];
    long n = sysfs_attr_pread_text(fd, buf, sizeof buf);
    if (n < 0) {
        snprintf(why, whylen, "%s", strerror(errno));
        return -1;
    }
    if (n == 0) {
        snprintf(why, whylen, "empty (the driver returned no data)");
        return -1;
    }
    char *end;
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (errno != 0 || *end != '\0') {
        snprintf(why, whylen, "not a number: '%.20s'", buf);
        return -1;
    }
    *out = v;
    return 0;
}

long sysfs_attr_read_text(const char *dir, const char *name, char *buf, size_t buflen)
{
    int fd = sysfs_attr_open(dir, name, O_RDONLY);
    if (fd < 0)
        return -1;
    long n = sysfs_attr_pread_text(fd, buf, buflen);
    int saved = errno;
    close(fd);
    errno = saved;
    return n;
}

long sysfs_attr_read_label(const char *dir, const char *name, const char *who, char *out,
                           size_t outlen, bool *absent, char *err, size_t errlen)
{
    char text[SYSFS_ATTR_LABEL_READ];
    if (absent != NULL)
        *absent = false;
    if (outlen > 0)
        out[0] = '\0';
    long n = sysfs_attr_read_text(dir, name, text, sizeof text);
    if (n < 0) {
        if (errno == ENOENT) {
            if (absent != NULL)
                *absent = true;
            return 0;
        }
        snprintf(err, errlen, "%s: cannot read %s: %s", who, name, strerror(errno));
        return -1;
    }
    if ((size_t)n >= outlen) {
        snprintf(err, errlen, "%s: %s '%s' is longer than %zu characters", who, name, text,
                 outlen > 0 ? outlen - 1 : 0);
        return -1;
    }
    memcpy(out, text, (size_t)n + 1);
    return n;
}

int sysfs_attr_write_long(const char *dir, const char *name, long value)
{
    int fd = sysfs_attr_open(dir, name, O_WRONLY | O_TRUNC);
    if (fd < 0)
        return -1;
    char buf[32];
    int len = snprintf(buf, sizeof buf, "%ld\n", value);
    ssize_t w;
    do {
        w = write(fd, buf, (size_t)len);
    } while (w < 0 && errno == EINTR);
    int saved = errno;
    if (close(fd) != 0 && w >= 0) {
        saved = errno;
        w = -1;
    }
    if (w != len) {
        errno = w < 0 ? saved : EIO;
        return -1;
    }
    return 0;
}

static int glob_escape(char *out, size_t outlen, const char *in)
{
    size_t o = 0;
    for (const char *p = in; *p; p++) {
        if (strchr(GLOB_META, *p)) {
            if (o + 1 >= outlen)
                return -1;
            out[o++] = '\\';
        }
        if (o + 1 >= outlen)
            return -1;
        out[o++] = *p;
    }
    out[o] = '\0';
    return 0;
}

/* Length of pattern's literal leading directories: "a/b/c" of "a/b/c/x*". */
static int literal_dir_len(const char *pattern)
{
    size_t meta = strcspn(pattern, GLOB_META);
    size_t len = 0;
    for (size_t i = 0; i < meta; i++) {
        if (pattern[i] == '/')
            len = i;
    }
    if (pattern[meta] == '\0' && meta > 0 && pattern[meta - 1] != '/')
        len = meta; /* no wildcard: the whole pattern is a directory */
    return len > INT_MAX ? INT_MAX : (int)len;
}

int sysfs_glob_dirs(const char *root, const char *pattern, glob_t *g, char *err,
                    size_t errlen)
{
    char escaped[PATH_MAX], full[PATH_MAX + 64];
    if (glob_escape(escaped, sizeof escaped, root) != 0 ||
        snprintf(full, sizeof full, "%s/%s", escaped, pattern) >= (int)sizeof full) {
        snprintf(err, errlen, "sysfs_root is too long (%zu bytes)", strlen(root));
        return -1;
    }
    int rc = glob(full, GLOB_ONLYDIR, NULL, g);
    if (rc == 0)
        return 0;
    globfree(g);
    if (rc == GLOB_NOMATCH)
        return 1;
    snprintf(err, errlen, "cannot search %s/%.*s: %s", root, literal_dir_len(pattern), pattern,
             rc == GLOB_NOSPACE ? "out of memory" : "read error");
    return -1;
}

int sysfs_dir_from_match(char *out, size_t outlen, const char *match)
{
    size_t len = strlen(match);
    while (len > 1 && match[len - 1] == '/')
        len--;
    if (len >= outlen)
        return -1;
    memcpy(out, match, len);
    out[len] = '\0';
    return 0;
}
