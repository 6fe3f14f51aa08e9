/*
 * board.c - board identity for the device fingerprint (see board.h).
 *
 * Only reads two small files. The model string decides the board's name; the
 * L4T release (or "Jetson"/"NVIDIA" in the model) decides whether it is a
 * Jetson. Anything else (a laptop, CI, another ARM board) is reported as
 * "not a Jetson (<machine>)" so its measurements never share a fingerprint with
 * a real board's.
 */
#include "board.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/log.h"

#define MODEL_REL_PATH "/firmware/devicetree/base/model"

/* Reads up to buflen - 1 bytes of path; returns the count, or -1 with errno. */
static long read_small_file(const char *path, char *buf, size_t buflen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t used = 0;
    while (used + 1 < buflen) {
        ssize_t n = read(fd, buf + used, buflen - 1 - used);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int saved = errno;
            close(fd);
            errno = saved;
            return -1;
        }
        if (n == 0)
            break;
        used += (size_t)n;
    }
    close(fd);
    buf[used] = '\0';
    return (long)used;
}

/* Device-tree strings end in NUL (and sometimes a newline): cut those and
 * anything unprintable that follows the text; replace stray control bytes. */
static void clean_text(char *s, size_t len)
{
    while (len > 0 && (s[len - 1] == '\0' || isspace((unsigned char)s[len - 1])))
        len--;
    s[len] = '\0';
    for (size_t i = 0; i < len; i++)
        if (iscntrl((unsigned char)s[i]))
            s[i] = ' ';
}

int board_parse_l4t_release(const char *line, char *out, unsigned long outlen)
{
    if (outlen)
        out[0] = '\0';
    const char *p = line;
    while (*p == '#' || *p == ' ' || *p == '\t')
        p++;
    if (*p != 'R' || !isdigit((unsigned char)p[1]))
        return -1;
    const char *major = p + 1;
    size_t major_len = 0;
    while (isdigit((unsigned char)major[major_len]))
        major_len++;
    const char *rev = strstr(major + major_len, "REVISION:");
    if (!rev)
        return -1;
    rev += strlen("REVISION:");
    while (*rev == ' ' || *rev == '\t')
        rev++;
    size_t rev_len = 0;
    while (isdigit((unsigned char)rev[rev_len]) || rev[rev_len] == '.')
        rev_len++;
    if (rev_len == 0 || !isdigit((unsigned char)rev[0]) || rev[rev_len - 1] == '.')
        return -1;
    if (major_len > 8 || rev_len > 16)
        return -1;
    int n = snprintf(out, outlen, "R%.*s.%.*s", (int)major_len, major, (int)rev_len, rev);
    if (n < 0 || (unsigned long)n >= outlen) {
        if (outlen)
            out[0] = '\0';
        return -1;
    }
    return 0;
}

static bool model_says_jetson(const char *model)
{
    return strcasestr(model, "jetson") != NULL || strcasestr(model, "nvidia") != NULL;
}

void board_identify(const char *sysfs_root, const char *nv_tegra_release_path,
                    struct board_identity *out)
{
    memset(out, 0, sizeof *out);

    char path[1024];
    char model[256] = "";
    snprintf(path, sizeof path, "%s%s", sysfs_root ? sysfs_root : "", MODEL_REL_PATH);
    long n = read_small_file(path, model, sizeof model);
    if (n < 0) {
        log_debug("board", "no device-tree model at %s: %s", path, strerror(errno));
        model[0] = '\0';
    } else {
        clean_text(model, (size_t)n);
    }

    char release[512] = "";
    if (nv_tegra_release_path && nv_tegra_release_path[0]) {
        n = read_small_file(nv_tegra_release_path, release, sizeof release);
        if (n < 0) {
            log_debug("board", "no L4T release at %s: %s", nv_tegra_release_path,
                      strerror(errno));
            release[0] = '\0';
        } else {
            release[strcspn(release, "\n")] = '\0';
            clean_text(release, strlen(release));
            if (release[0] && board_parse_l4t_release(release, out->l4t, sizeof out->l4t) != 0) {
                const char *p = release;
                while (*p == '#' || *p == ' ')
                    p++;
                log_warn("board", "cannot parse the L4T release in %s ('%s'); keeping it as is",
                         nv_tegra_release_path, p);
                snprintf(out->l4t, sizeof out->l4t, "%.63s", p); /* l4t[64] */
            }
        }
    }

    out->is_jetson = out->l4t[0] != '\0' || (model[0] && model_says_jetson(model));
    if (out->is_jetson) {
        snprintf(out->model, sizeof out->model, "%.127s", /* model[128] */
                 model[0] ? model : "unknown Jetson (no device-tree model)");
        return;
    }
    struct utsname u;
    const char *machine = uname(&u) == 0 ? u.machine : "unknown machine";
    if (model[0])
        snprintf(out->model, sizeof out->model, "not a Jetson (%.32s: %.76s)", machine, model);
    else
        snprintf(out->model, sizeof out->model, "not a Jetson (%.32s)", machine);
}
