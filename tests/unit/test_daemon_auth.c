/*
 * test_daemon_auth.c - jetprofd's auth and the configuration checks around it:
 * config_validate for a non-loopback listen address (server.token_file or
 * server.allow_unauthenticated = true) and for server.auth_reads without a
 * token file; the token file reader (trimming, empty, too long, not one word,
 * not a regular file, unreadable, and the warning for a file group or others
 * can read); which routes need the token with and without auth_reads (GET
 * /v1/health stays open); and the reload helpers config_diff and
 * config_copy_key that SIGHUP uses to find what changed and keep restart-only
 * keys. The HTTP side (401 bodies, WWW-Authenticate, token rotation) is
 * driven against a live daemon in tests/integration/test_auth.sh and
 * test_reload.sh.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/api.h"
#include "daemon/config.h"
#include "daemon/http.h"

static char scratch[64];
static struct config *cfg;
static char err[2048];

static int setup(void **state)
{
    (void)state;
    snprintf(scratch, sizeof scratch, "/tmp/jetprof-auth-XXXXXX");
    if (!mkdtemp(scratch))
        return -1;
    cfg = calloc(1, sizeof *cfg);
    return cfg ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "chmod -R u+rwx '%s' && rm -rf '%s'", scratch, scratch);
    int rc = system(cmd);
    free(cfg);
    return rc == 0 ? 0 : -1;
}

static int each_setup(void **state)
{
    (void)state;
    unsetenv("JETPROF_CONFIG");
    err[0] = '\0';
    return 0;
}

/* Writes content to scratch/name with mode; returns the path (static rotation). */
static const char *write_file(const char *name, const char *content, size_t len, mode_t mode)
{
    static char paths[4][256];
    static int next;
    char *path = paths[next++ % 4];
    snprintf(path, 256, "%s/%s", scratch, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
    return path;
}

static const char *write_token(const char *name, const char *content, mode_t mode)
{
    return write_file(name, content, strlen(content), mode);
}

/* config_load with "jetprofd" and the NULL-terminated arguments. */
static enum config_parse_result load(const char *first, ...)
{
    char *argv[64];
    int argc = 0;
    argv[argc++] = "jetprofd";
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *)) {
        assert_true(argc < 63);
        argv[argc++] = (char *)a;
    }
    va_end(ap);
    argv[argc] = NULL;
    return config_load(cfg, argc, argv, err, sizeof err);
}

static void assert_contains(const char *haystack, const char *needle)
{
    if (!strstr(haystack, needle))
        fail_msg("expected \"%s\" in \"%s\"", needle, haystack);
}

/* ---- config_validate ---- */

static void test_non_loopback_needs_token_or_explicit_consent(void **state)
{
    (void)state;
    assert_int_equal(load("--config", "none", NULL), CONFIG_OK);
    assert_false(cfg->allow_unauthenticated);
    assert_false(cfg->auth_reads);

    assert_int_equal(load("--config", "none", "--listen", "0.0.0.0:9740", NULL), CONFIG_OK);
    assert_int_equal(config_validate(cfg, err, sizeof err), -1);
    assert_string_equal(err, "listen address 0.0.0.0:9740 is not loopback and server.token_file "
                             "is empty: anyone on the network could queue jobs or change the "
                             "sampling; set server.token_file, or "
                             "server.allow_unauthenticated = true to accept that");

    /* saying so explicitly is accepted, from a flag or from the file */
    assert_int_equal(load("--config", "none", "--listen", "0.0.0.0:9740", "--set",
                          "server.allow_unauthenticated=true", NULL),
                     CONFIG_OK);
    assert_true(cfg->allow_unauthenticated);
    assert_int_equal(config_validate(cfg, err, sizeof err), 0);
    char path[256];
    snprintf(path, sizeof path, "%s", write_token("open.conf",
                                                  "[server]\nlisten = [::]:0\n"
                                                  "allow_unauthenticated = yes\n",
                                                  0644));
    assert_int_equal(load("--config", path, NULL), CONFIG_OK);
    assert_int_equal(config_validate(cfg, err, sizeof err), 0);
    assert_false(config_listen_is_loopback(cfg));

    /* false is the same as leaving it out */
    assert_int_equal(load("--config", "none", "--listen", "10.1.2.3:80", "--set",
                          "server.allow_unauthenticated=false", NULL),
                     CONFIG_OK);
    assert_int_equal(config_validate(cfg, err, sizeof err), -1);
    assert_contains(err, "server.allow_unauthenticated = true");

    /* a value that is not a boolean names the key */
    assert_int_equal(load("--config", "none", "--set", "server.allow_unauthenticated=maybe",
                          NULL),
                     CONFIG_ERROR);
    assert_contains(err, "server.allow_unauthenticated");

    /* loopback needs neither */
    assert_int_equal(load("--config", "none", "--listen", "127.0.0.1:0", NULL), CONFIG_OK);
    assert_int_equal(config_validate(cfg, err, sizeof err), 0);
    assert_true(config_listen_is_loopback(cfg));
}

static void test_auth_reads_needs_token_file(void **state)
{
    (void)state;
    assert_int_equal(load("--config", "none", "--set", "server.auth_reads=true", NULL),
                     CONFIG_OK);
    assert_true(cfg->auth_reads);
    assert_int_equal(config_validate(cfg, err, sizeof err), -1);
    assert_contains(err, "server.auth_reads = true needs server.token_file");

    /* also with allow_unauthenticated: there is still no token to require */
    assert_int_equal(load("--config", "none", "--listen", "0.0.0.0:0", "--set",
                          "server.allow_unauthenticated=true", "--set", "server.auth_reads=on",
                          NULL),
                     CONFIG_OK);
    assert_int_equal(config_validate(cfg, err, sizeof err), -1);
    assert_contains(err, "server.auth_reads");

    assert_int_equal(load("--config", "none", "--listen", "0.0.0.0:0", "--token-file",
                          "/etc/jetprof/token", "--set", "server.auth_reads=1", NULL),
                     CONFIG_OK);
    assert_int_equal(config_validate(cfg, err, sizeof err), 0);
}

/* ---- the token file ---- */

static void test_token_trimmed(void **state)
{
    (void)state;
    char token[HTTP_TOKEN_MAX], warn[512];
    const char *p = write_token("t1", "s3cret-token\n", 0600);
    assert_int_equal(http_token_read(p, token, sizeof token, warn, sizeof warn, err, sizeof err),
                     0);
    assert_string_equal(token, "s3cret-token");
    assert_string_equal(warn, "");

    p = write_token("t2", "  \t0123abcd\r\n\n  ", 0400);
    assert_int_equal(http_token_read(p, token, sizeof token, warn, sizeof warn, err, sizeof err),
                     0);
    assert_string_equal(token, "0123abcd");

    /* exactly what fits */
    char longest[HTTP_TOKEN_MAX];
    memset(longest, 'x', sizeof longest - 1);
    longest[sizeof longest - 1] = '\0';
    p = write_token("t3", longest, 0600);
    assert_int_equal(http_token_read(p, token, sizeof token, warn, sizeof warn, err, sizeof err),
                     0);
    assert_string_equal(token, longest);
}

static void test_token_errors_name_the_file(void **state)
{
    (void)state;
    char token[HTTP_TOKEN_MAX], warn[512];
    char path[300];

    const char *p = write_token("empty", "", 0600);
    snprintf(path, sizeof path, "%s", p);
    assert_int_equal(
        http_token_read(path, token, sizeof token, warn, sizeof warn, err, sizeof err), -1);
    assert_contains(err, path);
    assert_contains(err, "is empty");

    p = write_token("blank", " \n\n\t\n", 0600);
    assert_int_equal(http_token_read(p, token, sizeof token, warn, sizeof warn, err, sizeof err),
                     -1);
    assert_contains(err, "is empty");

    p = write_token("two-words", "abc def\n", 0600);
    assert_int_equal(http_token_read(p, token, sizeof token, warn, sizeof warn, err, sizeof err),
                     -1);
    assert_contains(err, "one word of printable ASCII");

    p = write_token("two-lines", "abc\ndef\n", 0600);
    assert_int_equal(http_token_read(p, token, sizeof token, warn, sizeof warn, err, sizeof err),
                     -1);
    assert_contains(err, "one word");

    p = write_file("nul", "abc\0def\n", 8, 0600);
    assert_int_equal(http_token_read(p, token, sizeof token, warn, sizeof warn, err, sizeof err),
                     -1);
    assert_contains(err, "one word");

    p = write_token("utf8", "t\xc3\xb6ken\n", 0600);
    assert_int_equal(http_token_read(p, token, sizeof token, warn, sizeof warn, err, sizeof err),
                     -1);
    assert_contains(err, "printable ASCII");

    char too_long[HTTP_TOKEN_MAX + 1];
    memset(too_long, 'x', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = '\0';
    p = write_token("long", too_long, 0600);
    assert_int_equal(http_token_read(p, token, sizeof token, warn, sizeof warn, err, sizeof err),
                     -1);
    assert_contains(err, "longer than 255 characters");

    /* a file far larger than the read buffer is refused, not truncated */
    static char huge[5000];
    memset(huge, 'y', sizeof huge);
    p = write_file("huge", huge, sizeof huge, 0600);
    assert_int_equal(http_token_read(p, token, sizeof token, warn, sizeof warn, err, sizeof err),
                     -1);
    assert_contains(err, "longer than");

    snprintf(path, sizeof path, "%s/missing", scratch);
    assert_int_equal(
        http_token_read(path, token, sizeof token, warn, sizeof warn, err, sizeof err), -1);
    assert_contains(err, "cannot read token file");
    assert_contains(err, path);
    assert_contains(err, strerror(ENOENT));

    /* a directory, and a FIFO (which must not block the start) */
    assert_int_equal(
        http_token_read(scratch, token, sizeof token, warn, sizeof warn, err, sizeof err), -1);
    assert_contains(err, "is not a regular file");
    snprintf(path, sizeof path, "%s/fifo", scratch);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(
        http_token_read(path, token, sizeof token, warn, sizeof warn, err, sizeof err), -1);
    assert_contains(err, "is not a regular file");

    /* unreadable: only meaningful without root's override of the mode bits */
    if (geteuid() != 0) {
        p = write_token("unreadable", "abc\n", 0000);
        assert_int_equal(
            http_token_read(p, token, sizeof token, warn, sizeof warn, err, sizeof err), -1);
        assert_contains(err, "cannot read token file");
        assert_contains(err, strerror(EACCES));
    } else {
        print_message("(running as root: the EACCES case is not checked)\n");
    }
}

static void test_token_mode_warning(void **state)
{
    (void)state;
    char token[HTTP_TOKEN_MAX], warn[512];
    static const struct {
        mode_t mode;
        const char *shown;
    } loose[] = {{0644, "mode 0644"}, {0640, "mode 0640"}, {0604, "mode 0604"},
                 {0620, "mode 0620"}, {0602, "mode 0602"}, {0660, "mode 0660"}};
    for (size_t i = 0; i < sizeof loose / sizeof loose[0]; i++) {
        const char *p = write_token("loose", "tok\n", loose[i].mode);
        assert_int_equal(
            http_token_read(p, token, sizeof token, warn, sizeof warn, err, sizeof err), 0);
        assert_string_equal(token, "tok");
        if (!strstr(warn, loose[i].shown) || !strstr(warn, "chmod 600") || !strstr(warn, p))
            fail_msg("mode %04o: warning '%s'", (unsigned)loose[i].mode, warn);
    }
    static const mode_t tight[] = {0600, 0400, 0700};
    for (size_t i = 0; i < sizeof tight / sizeof tight[0]; i++) {
        const char *p = write_token("tight", "tok\n", tight[i]);
        assert_int_equal(
            http_token_read(p, token, sizeof token, warn, sizeof warn, err, sizeof err), 0);
        if (warn[0])
            fail_msg("mode %04o warned: %s", (unsigned)tight[i], warn);
    }
}

/* ---- which routes need the token ---- */

static void test_routes_needing_the_token(void **state)
{
    (void)state;
    size_t mutating = 0, reads = 0;
    bool saw_health = false, saw_metrics = false;
    for (size_t i = 0; i < api_route_count; i++) {
        const struct api_route *r = &api_routes[i];
        bool health = strcmp(r->method, "GET") == 0 && strcmp(r->pattern, "/v1/health") == 0;
        saw_health |= health;
        if (r->mutating) {
            mutating++;
            assert_true(http_route_needs_token(r, false));
            assert_true(http_route_needs_token(r, true));
            continue;
        }
        reads++;
        /* reads are open unless auth_reads is on; health stays open for probes */
        assert_false(http_route_needs_token(r, false));
        if (health)
            assert_false(http_route_needs_token(r, true));
        else if (!http_route_needs_token(r, true))
            fail_msg("%s %s is open with auth_reads", r->method, r->pattern);
        if (strcmp(r->pattern, "/metrics") == 0) {
            saw_metrics = true;
            assert_true(http_route_needs_token(r, true));
        }
    }
    assert_true(saw_health);
    assert_true(saw_metrics);
    assert_true(mutating >= 5);
    assert_true(reads >= 10);
    assert_false(http_route_needs_token(NULL, true));

    /* HEAD is routed as GET: HEAD /v1/health is open, HEAD /v1/jobs is not */
    const struct api_route *route = NULL;
    assert_int_equal(api_route_match("HEAD", "/v1/health", &route, NULL, 0, NULL, 0),
                     API_MATCH_OK);
    assert_false(http_route_needs_token(route, true));
    assert_int_equal(api_route_match("HEAD", "/v1/jobs", &route, NULL, 0, NULL, 0),
                     API_MATCH_OK);
    assert_true(http_route_needs_token(route, true));
}

/* ---- reload helpers ---- */

struct seen {
    char keys[CONFIG_MAX_KEYS][96];
    char olds[CONFIG_MAX_KEYS][64];
    char news[CONFIG_MAX_KEYS][64];
    size_t n;
};

static void record(const char *key, const char *old_value, const char *new_value, void *ctx)
{
    struct seen *s = ctx;
    assert_true(s->n < CONFIG_MAX_KEYS);
    snprintf(s->keys[s->n], sizeof s->keys[0], "%s", key);
    snprintf(s->olds[s->n], sizeof s->olds[0], "%s", old_value);
    snprintf(s->news[s->n], sizeof s->news[0], "%s", new_value);
    s->n++;
}

static void test_config_diff_and_copy_key(void **state)
{
    (void)state;
    struct config *old_cfg = calloc(1, sizeof *old_cfg);
    struct seen *seen = calloc(1, sizeof *seen);
    assert_non_null(old_cfg);
    assert_non_null(seen);
    assert_int_equal(load("--config", "none", NULL), CONFIG_OK);
    *old_cfg = *cfg;
    assert_int_equal(config_diff(old_cfg, cfg, record, seen), 0);
    assert_int_equal(seen->n, 0);

    const char *p = write_token("next.conf",
                                "[server]\nlisten = 127.0.0.1:1234\nauth_reads = false\n"
                                "[measure]\nrepeats = 5\nmax_cv = 0.1\n[log]\nlevel = debug\n",
                                0644);
    assert_int_equal(load("--config", p, NULL), CONFIG_OK);
    /* auth_reads = false is the default: set, but not a change */
    assert_int_equal(config_diff(old_cfg, cfg, record, seen), 4);
    assert_int_equal(seen->n, 4);
    /* table order, values as config_print writes them */
    assert_string_equal(seen->keys[0], "server.listen");
    assert_string_equal(seen->olds[0], "127.0.0.1:9740");
    assert_string_equal(seen->news[0], "127.0.0.1:1234");
    assert_string_equal(seen->keys[1], "measure.repeats");
    assert_string_equal(seen->olds[1], "3");
    assert_string_equal(seen->news[1], "5");
    assert_string_equal(seen->keys[2], "measure.max_cv");
    assert_string_equal(seen->news[2], "0.1");
    assert_string_equal(seen->keys[3], "log.level");
    assert_string_equal(seen->news[3], "debug");
    assert_int_equal(config_diff(old_cfg, cfg, NULL, NULL), 4);

    /* a restart-only key keeps its running value, and its origin */
    assert_int_equal(config_copy_key(cfg, old_cfg, "server.listen"), 0);
    assert_string_equal(cfg->listen, "127.0.0.1:9740");
    assert_int_equal(config_copy_key(cfg, old_cfg, "measure.max_cv"), 0);
    assert_true(cfg->max_cv == old_cfg->max_cv);
    seen->n = 0;
    assert_int_equal(config_diff(old_cfg, cfg, record, seen), 2);
    assert_string_equal(seen->keys[0], "measure.repeats");
    assert_string_equal(seen->keys[1], "log.level");
    assert_int_equal(cfg->repeats, 5);

    assert_int_equal(config_copy_key(cfg, old_cfg, "server.nonesuch"), -1);
    assert_int_equal(config_copy_key(cfg, old_cfg, "listen"), -1);
    assert_int_equal(config_copy_key(cfg, old_cfg, ""), -1);
    free(seen);
    free(old_cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_non_loopback_needs_token_or_explicit_consent, each_setup),
        cmocka_unit_test_setup(test_auth_reads_needs_token_file, each_setup),
        cmocka_unit_test_setup(test_token_trimmed, each_setup),
        cmocka_unit_test_setup(test_token_errors_name_the_file, each_setup),
        cmocka_unit_test_setup(test_token_mode_warning, each_setup),
        cmocka_unit_test_setup(test_routes_needing_the_token, each_setup),
        cmocka_unit_test_setup(test_config_diff_and_copy_key, each_setup),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
