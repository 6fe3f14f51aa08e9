/*
 * sysfs_attr.h - the sysfs plumbing the kernel-driver power backends share
 * (sensor_hwmon.c: ina3221-hwmon, sensor_iio.c: ina3221x-iio): finding a
 * driver's device directories under a sysfs root by glob, opening attribute
 * files, reading an integer or a trimmed string from offset 0 of an open
 * attribute, reading a rail label, and writing a decimal value.
 *
 * Why pread at offset 0: sysfs regenerates an attribute's text on every read
 * from the start, so a descriptor opened once can be re-read for every sample
 * without a seek or a reopen; the backends keep their input attributes open
 * and call sysfs_attr_pread_long() in the sampling loop.
 *
 * No driver policy lives here: what a backend globs for, which attributes it
 * opens, what a missing or empty attribute means and how a failed sample is
 * reported stay in the backend. The helpers set errno or fill the caller's
 * err/why buffer (with the same words for both backends), and never log.
 */
#ifndef JETPROF_SYSFS_ATTR_H
#define JETPROF_SYSFS_ATTR_H

#include <glob.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Bytes sysfs_attr_read_label() reads a label attribute into (with the NUL). */
#define SYSFS_ATTR_LABEL_READ 64

/*
 * Opens <dir>/<name> with flags (O_RDONLY, or O_WRONLY | O_TRUNC to write;
 * O_CLOEXEC is added). name may hold slashes ("of_node/ti,trigger-config").
 * The descriptor, or -1 with errno (ENAMETOOLONG when the path does not fit).
 */
int sysfs_attr_open(const char *dir, const char *name, int flags);

/* pread of up to len bytes at offset 0, retried on EINTR. Bytes read, or -1
 * with errno. */
ssize_t sysfs_attr_pread(int fd, void *buf, size_t len);

/*
 * Reads a small attribute from offset 0 into buf (buflen >= 1) as text:
 * NUL-terminated, trailing whitespace and NULs cut, at most buflen - 1 bytes
 * (a longer value is cut short). Its length, or -1 with errno.
 */
long sysfs_attr_pread_text(int fd, char *buf, size_t buflen);

/*
 * Reads a decimal integer attribute from offset 0. 0 and *out, or -1 with a
 * reason in why: the strerror text, "empty (the driver returned no data)" (a
 * driver's way of saying a disabled input has nothing), or "not a number:
 * '<text>'".
 */
int sysfs_attr_pread_long(int fd, long *out, char *why, size_t whylen);

/* Opens, reads as sysfs_attr_pread_text() and closes <dir>/<name>. Its
 * length, or -1 with errno (ENOENT when the attribute does not exist). */
long sysfs_attr_read_text(const char *dir, const char *name, char *buf, size_t buflen);

/*
 * Reads a rail label attribute <dir>/<name> into out (outlen bytes; labels
 * are short, so at most SYSFS_ATTR_LABEL_READ - 1 bytes of it are read). Its
 * length; 0 when it is empty or absent, with out "" and *absent (when absent
 * is not NULL) saying which; or -1 with err "<who>: cannot read <name>:
 * <reason>" or "<who>: <name> '<text>' is longer than <outlen - 1> characters".
 */
long sysfs_attr_read_label(const char *dir, const char *name, const char *who, char *out,
                           size_t outlen, bool *absent, char *err, size_t errlen);

/* Writes value to <dir>/<name> the way `echo value > attr` does (decimal and
 * a newline, in one write). 0, or -1 with errno (the driver's refusal). */
int sysfs_attr_write_long(const char *dir, const char *name, long value);

/*
 * The directories matching <root>/<pattern>, in glob's sorted order. root is
 * matched literally (its glob metacharacters are escaped: a sysfs_root may
 * hold any); pattern is a glob relative to it that ends in '/', so that only
 * directories match. Returns 0 with *g filled (globfree it), 1 when nothing
 * matches, or -1 with err ("sysfs_root is too long (<n> bytes)", or "cannot
 * search <root>/<pattern up to the directory holding its first wildcard>:
 * out of memory"); *g needs no globfree after 1 or -1.
 */
int sysfs_glob_dirs(const char *root, const char *pattern, glob_t *g, char *err,
                    size_t errlen);

/* Copies a glob match into out without its trailing slashes (a lone "/"
 * stays). 0, or -1 when it does not fit in outlen. */
int sysfs_dir_from_match(char *out, size_t outlen, const char *match);

#endif
