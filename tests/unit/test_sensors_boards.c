/*
 * test_sensors_boards.c - the board table (boards.c) against the model strings
 * NVIDIA's device trees give and against every fixture tree under
 * tests/fixtures/sysfs/.
 *
 * Each fixture directory must be recognised as exactly one board, and the
 * backend that fits its layout (hwmon for JetPack 5/6, IIO for JetPack 4) must
 * find that board's connected rails, in table order, with its input rail.
 * Fixtures are only read here; the backends write nothing when no sampling is
 * asked for.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "sensors/boards.h"
#include "sensors/sensor.h"

extern const struct sensor_backend sensor_backend_ina3221_hwmon;
extern const struct sensor_backend sensor_backend_ina3221x_iio;

#define FIXTURES "tests/fixtures/sysfs"

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool rail_connected(const struct board_channel *c)
{
    return c->rail != NULL && strcmp(c->rail, "NC") != 0;
}

static void test_table_is_consistent(void **state)
{
    (void)state;
    assert_int_equal(boards_count(), 7);
    assert_null(boards_at(boards_count()));
    for (size_t i = 0; i < boards_count(); i++) {
        const struct board *b = boards_at(i);
        assert_non_null(b);
        assert_non_null(b->name);
        assert_non_null(b->model_match);
        assert_true(strlen(b->model_match) >= 5);
        assert_true(b->chip_count >= 1 && b->chip_count <= BOARD_MAX_CHIPS);
        unsigned rails = 0;
        bool input_found = false;
        for (unsigned c = 0; c < b->chip_count; c++) {
            const struct board_chip *chip = &b->chips[c];
            assert_true(chip->i2c_bus >= 0);
            assert_true(chip->addr >= 0x40 && chip->addr <= 0x43);
            for (unsigned k = 0; k < 3; k++) {
                const struct board_channel *ch = &chip->channels[k];
                if (!rail_connected(ch))
                    continue;
                rails++;
                assert_true(strlen(ch->rail) < SENSOR_RAIL_NAME_MAX);
                /* Jetson shunts are 2, 5 or 10 mOhm. */
                assert_true(ch->shunt_uohm == 2000 || ch->shunt_uohm == 5000 ||
                            ch->shunt_uohm == 10000);
                if (b->input_rail && strcmp(b->input_rail, ch->rail) == 0)
                    input_found = true;
            }
        }
        assert_true(rails >= 1 && rails <= SENSOR_MAX_RAILS);
        /* Either an input rail that exists, or none and the sum flagged. */
        if (b->input_rail) {
            assert_true(input_found);
            assert_false(b->input_is_sum);
        } else {
            assert_true(b->input_is_sum);
        }
        char dir[256];
        snprintf(dir, sizeof dir, FIXTURES "/%s", b->fixture);
        assert_true(is_dir(dir));
        /* No two boards share a name or a model_match. */
        for (size_t j = 0; j < i; j++) {
            assert_string_not_equal(boards_at(j)->name, b->name);
            assert_null(strstr(b->model_match, boards_at(j)->model_match));
            assert_null(strstr(boards_at(j)->model_match, b->model_match));
        }
    }
}

static void test_real_model_strings(void **state)
{
    (void)state;
    /* Model strings as NVIDIA's device trees and boards report them. */
    static const struct {
        const char *model, *board;
    } cases[] = {
        {"NVIDIA Jetson Nano Developer Kit", "Jetson Nano"},
        {"quill", "Jetson TX2"},
        {"NVIDIA Jetson Xavier NX Developer Kit", "Jetson Xavier NX"},
        {"Jetson-AGX", "Jetson AGX Xavier"},
        {"NVIDIA Orin NX Developer Kit", "Jetson Orin NX"},
        {"NVIDIA Orin Nano Developer Kit", "Jetson Orin Nano"},
        {"Jetson AGX Orin", "Jetson AGX Orin"},
        {"NVIDIA Jetson AGX Orin Developer Kit", "Jetson AGX Orin"},
        /* Not Jetsons, or not ones with a table row. */
        {"Raspberry Pi 4 Model B Rev 1.4", NULL},
        {"lanai", NULL}, /* TX2 NX */
        {"jetson_tx1", NULL},
        {"", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct board *b = boards_match(cases[i].model);
        if (cases[i].board == NULL) {
            if (b != NULL)
                print_error("'%s' matched %s\n", cases[i].model, b->name);
            assert_null(b);
        } else {
            if (b == NULL)
                print_error("'%s' matched nothing\n", cases[i].model);
            assert_non_null(b);
            assert_string_equal(b->name, cases[i].board);
        }
    }
    assert_null(boards_match(NULL));
    /* "Orin Nano" must not be taken for the (Maxwell) Nano. */
    assert_string_equal(boards_match("NVIDIA Jetson Orin Nano Developer Kit")->name,
                        "Jetson Orin Nano");
}

static unsigned count_matches(const char *model)
{
    unsigned n = 0;
    for (size_t i = 0; i < boards_count(); i++)
        if (strstr(model, boards_at(i)->model_match))
            n++;
    return n;
}

/* Opens the backend that fits the fixture's layout on it. */
static void open_fixture(const char *root, struct sensor *s)
{
    char probe[512];
    snprintf(probe, sizeof probe, "%s/bus/i2c/drivers/ina3221", root);
    const struct sensor_backend *b =
        is_dir(probe) ? &sensor_backend_ina3221_hwmon : &sensor_backend_ina3221x_iio;
    memset(s, 0, sizeof *s);
    s->backend = b;
    s->board_input_rail = -1;
    struct sensor_options o = {0};
    o.sysfs_root = root;
    char err[256] = "";
    int rc = b->open(s, &o, err, sizeof err);
    if (rc != 0)
        print_error("%s on %s: %s\n", b->name, root, err);
    assert_int_equal(rc, 0);
}

static void check_fixture_against_table(const char *name)
{
    char root[256], model[256];
    snprintf(root, sizeof root, FIXTURES "/%s", name);
    assert_int_equal(boards_read_model(root, model, sizeof model), 0);
    assert_int_equal(count_matches(model), 1);
    const struct board *b = boards_match(model);
    assert_non_null(b);

    struct sensor s;
    open_fixture(root, &s);
    unsigned r = 0;
    for (unsigned c = 0; c < b->chip_count; c++) {
        for (unsigned k = 0; k < 3; k++) {
            const struct board_channel *ch = &b->chips[c].channels[k];
            if (!rail_connected(ch))
                continue;
            assert_true(r < s.rail_count);
            if (strcmp(s.rails[r].name, ch->rail) != 0)
                print_error("%s: rail %u is %s, the table says %s\n", name, r, s.rails[r].name,
                            ch->rail);
            assert_string_equal(s.rails[r].name, ch->rail);
            bool is_input = b->input_rail && strcmp(b->input_rail, ch->rail) == 0;
            assert_int_equal(s.rails[r].is_board_input, is_input);
            if (is_input)
                assert_int_equal(s.board_input_rail, (int)r);
            r++;
        }
    }
    assert_int_equal(s.rail_count, r);
    assert_int_equal(s.board_input_is_sum, b->input_is_sum);
    if (b->input_rail == NULL)
        assert_int_equal(s.board_input_rail, -1);
    assert_non_null(strstr(s.description, b->name));
    /* One sample of every rail reads. */
    struct sensor_sample smp;
    char err[256];
    assert_int_equal(s.backend->read(&s, &smp, err, sizeof err), 0);
    for (unsigned i = 0; i < s.rail_count; i++) {
        assert_true(smp.voltage_mv[i] > 0.0);
        assert_true(smp.power_mw[i] >= 0.0);
    }
    s.backend->close(&s);
}

static void test_every_board_fixture(void **state)
{
    (void)state;
    for (size_t i = 0; i < boards_count(); i++)
        check_fixture_against_table(boards_at(i)->fixture);
}

/* Every directory under tests/fixtures/sysfs, the JetPack 4 variants too. */
static void test_every_fixture_directory(void **state)
{
    (void)state;
    DIR *d = opendir(FIXTURES);
    assert_non_null(d);
    unsigned seen = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[512];
        snprintf(path, sizeof path, FIXTURES "/%s", e->d_name);
        if (!is_dir(path))
            continue;
        check_fixture_against_table(e->d_name);
        seen++;
    }
    closedir(d);
    /* 7 boards, plus JetPack 4 trees for the two boards that ran both. */
    assert_int_equal(seen, 9);
}

/* ---- boards_read_model ---- */

struct tmp {
    char dir[64];
};

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void write_model(const char *root, const void *data, size_t len)
{
    char path[256];
    snprintf(path, sizeof path, "%s/firmware", root);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/firmware/devicetree", root);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/firmware/devicetree/base", root);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/firmware/devicetree/base/model", root);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void test_read_model(void **state)
{
    (void)state;
    struct tmp t;
    snprintf(t.dir, sizeof t.dir, "/tmp/jetprof-boards.XXXXXX");
    assert_non_null(mkdtemp(t.dir));
    char model[64];

    /* Absent. */
    memcpy(model, "junk", 5);
    assert_int_equal(boards_read_model(t.dir, model, sizeof model), -1);
    assert_string_equal(model, "");

    /* The device-tree form: a string with its trailing NUL. */
    write_model(t.dir, "Jetson AGX Orin", sizeof "Jetson AGX Orin");
    assert_int_equal(boards_read_model(t.dir, model, sizeof model), 0);
    assert_string_equal(model, "Jetson AGX Orin");

    /* A hand-made tree with a newline, and bytes after a NUL. */
    write_model(t.dir, "quill\n", 6);
    assert_int_equal(boards_read_model(t.dir, model, sizeof model), 0);
    assert_string_equal(model, "quill");
    write_model(t.dir, "quill\0extra", 11);
    assert_int_equal(boards_read_model(t.dir, model, sizeof model), 0);
    assert_string_equal(model, "quill");

    /* Longer than the buffer: truncated, still terminated. */
    write_model(t.dir, "NVIDIA Jetson Xavier NX Developer Kit", 38);
    char small[12];
    assert_int_equal(boards_read_model(t.dir, small, sizeof small), 0);
    assert_string_equal(small, "NVIDIA Jets");
    assert_int_equal(boards_read_model(t.dir, NULL, 10), -1);
    assert_int_equal(boards_read_model(t.dir, small, 0), -1);

    /* An empty file is a model of "", which matches nothing. */
    write_model(t.dir, "", 0);
    assert_int_equal(boards_read_model(t.dir, model, sizeof model), 0);
    assert_string_equal(model, "");
    assert_null(boards_match(model));

    nftw(t.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
    jp_log_set_level(JP_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_is_consistent),
        cmocka_unit_test(test_real_model_strings),
        cmocka_unit_test(test_every_board_fixture),
        cmocka_unit_test(test_every_fixture_directory),
        cmocka_unit_test(test_read_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
