/*
 * test_sensors_i2c.c - the emulated INA3221 (sensors/ina3221_emu.c) and the
 * ina3221-i2c backend (sensors/sensor_ina3221_i2c.c) driving it through the
 * same i2c_bus.h interface as /dev/i2c-N; the Linux bus's error paths
 * (sensors/i2c_bus_linux.c) against a scratch dev_root.
 *
 * Emulator tests run on a test clock, so conversion timing, CVRF and the
 * averaging filter are checked exactly. Backend tests run on the real clock
 * with 140 us conversions (a cycle is 0.28..0.84 ms) and assert nothing about
 * time except generous upper bounds on waits that must end; freshness is
 * checked with the emulator's counters (one CVRF consumed per sample), not
 * with timing. No real I2C hardware is needed or touched.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "sensors/boards.h"
#include "sensors/i2c_bus.h"
#include "sensors/ina3221.h"
#include "sensors/ina3221_emu.h"
#include "sensors/sampler.h"
#include "sensors/sensor.h"

extern const struct sensor_backend sensor_backend_ina3221_i2c;

#define US 1000LL
#define MS 1000000LL
#define BUS 1
#define ADDR 0x40

#define assert_near(a, b, eps)                                                           \
    do {                                                                                 \
        double a_ = (a), b_ = (b);                                                       \
        if (!(fabs(a_ - b_) <= (eps))) {                                                 \
            print_error("%s = %.9g, expected %.9g +- %g\n", #a, a_, b_, (double)(eps)); \
            fail();                                                                      \
        }                                                                                \
    } while (0)

#define assert_contains(haystack, needle)                                                \
    do {                                                                                 \
        if (strstr((haystack), (needle)) == NULL) {                                      \
            print_error("\"%s\" does not contain \"%s\"\n", (haystack), (needle));      \
            fail();                                                                      \
        }                                                                                \
    } while (0)

struct fixture {
    char dir[64]; /* scratch sysfs_root and dev_root */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/jetprof-i2c-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static void remove_model(const struct fixture *f)
{
    static const char *const parts[] = {"/firmware/devicetree/base/model",
                                        "/firmware/devicetree/base", "/firmware/devicetree",
                                        "/firmware", "/i2c-1"};
    char path[PATH_MAX];
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        snprintf(path, sizeof path, "%s%s", f->dir, parts[i]);
        remove(path);
    }
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    remove_model(f);
    int rc = rmdir(f->dir);
    free(f);
    /* every test must leave no emulated chip behind */
    for (unsigned a = INA3221_ADDR_MIN; a <= INA3221_ADDR_MAX; a++) {
        for (int b = 0; b < 16; b++) {
            struct ina3221_emu *left = ina3221_emu_get(b, a);
            if (left != NULL) {
                ina3221_emu_release(left);
                return -1;
            }
        }
    }
    return rc;
}

/* <dir>/firmware/devicetree/base/model with its trailing NUL, as the kernel has it. */
static void write_model(const struct fixture *f, const char *model)
{
    char path[PATH_MAX];
    static const char *const dirs[] = {"/firmware", "/firmware/devicetree",
                                       "/firmware/devicetree/base"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(path, sizeof path, "%s%s", f->dir, dirs[i]);
        assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
    }
    snprintf(path, sizeof path, "%s/firmware/devicetree/base/model", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fwrite(model, 1, strlen(model) + 1, fp), strlen(model) + 1);
    assert_int_equal(fclose(fp), 0);
}

/* ---- a test clock ---- */

struct test_clock {
    int64_t now_ns;
};

static int64_t test_clock_now(void *ctx) { return ((struct test_clock *)ctx)->now_ns; }

static uint16_t rd(struct i2c_dev *d, uint8_t reg)
{
    uint16_t v = 0;
    assert_int_equal(i2c_dev_read_be16(d, reg, &v), 0);
    return v;
}

static void wr(struct i2c_dev *d, uint8_t reg, uint16_t v)
{
    assert_int_equal(i2c_dev_write_be16(d, reg, v), 0);
}

/* A chip at BUS/ADDR on a test clock at 0, and a device on it. */
static struct ina3221_emu *chip_on_clock(struct test_clock *clk, struct i2c_dev **dev)
{
    char err[200];
    struct ina3221_emu *emu;
    assert_int_equal(ina3221_emu_create(BUS, ADDR, &emu, err, sizeof err), 0);
    clk->now_ns = 0;
    ina3221_emu_set_clock(emu, test_clock_now, clk);
    assert_int_equal(ina3221_emu_open(BUS, ADDR, false, dev, err, sizeof err), 0);
    return emu;
}

/* ---- emulator ---- */

static void test_emu_power_on_and_byte_order(void **state)
{
    (void)state;
    struct test_clock clk;
    struct i2c_dev *d;
    struct ina3221_emu *emu = chip_on_clock(&clk, &d);
    assert_string_equal(d->where, "0x40 on emulated i2c-1");

    /* SMBus words come least significant byte first */
    uint16_t word;
    assert_int_equal(d->ops->read_word(d, INA3221_REG_CONFIG, &word), 0);
    assert_int_equal(word, 0x2771);
    assert_int_equal(d->ops->read_word(d, INA3221_REG_MANUFACTURER_ID, &word), 0);
    assert_int_equal(word, 0x4954);
    assert_int_equal(rd(d, INA3221_REG_CONFIG), 0x7127);
    assert_int_equal(rd(d, INA3221_REG_MANUFACTURER_ID), 0x5449);
    assert_int_equal(rd(d, INA3221_REG_DIE_ID), 0x3220);
    assert_int_equal(rd(d, 0x07), 0x7FF8);
    assert_int_equal(rd(d, INA3221_REG_SHUNT_SUM_LIMIT), 0x7FFE);
    assert_int_equal(rd(d, INA3221_REG_PV_UPPER), 0x2710);
    assert_int_equal(rd(d, INA3221_REG_PV_LOWER), 0x2328);
    assert_int_equal(rd(d, 0x01), 0);
    assert_int_equal(rd(d, 0x42), 0); /* no register there */

    /* a raw SMBus word 0x3412 is the register value 0x1234; limits drop bits 2..0 */
    assert_int_equal(d->ops->write_word(d, 0x07, 0x3412), 0);
    assert_int_equal(ina3221_emu_peek(emu, 0x07), 0x1230);
    wr(d, INA3221_REG_CONFIG, 0x7007);
    assert_int_equal(ina3221_emu_peek(emu, INA3221_REG_CONFIG), 0x7007);
    /* read-only registers ignore writes */
    wr(d, INA3221_REG_MANUFACTURER_ID, 0x1111);
    wr(d, 0x01, 0x0800);
    assert_int_equal(rd(d, INA3221_REG_MANUFACTURER_ID), 0x5449);
    assert_int_equal(rd(d, 0x01), 0);
    /* mask/enable keeps only its writable bits */
    wr(d, INA3221_REG_MASK_ENABLE, 0xFFFF);
    assert_int_equal(ina3221_emu_peek(emu, INA3221_REG_MASK_ENABLE), 0x7C00);

    struct ina3221_emu_stats st;
    ina3221_emu_get_stats(emu, &st);
    assert_int_equal(st.writes, 5);
    assert_int_equal(st.config_writes, 1);
    i2c_dev_close(d);
    ina3221_emu_release(emu);
}

static void test_emu_conversion_timing(void **state)
{
    (void)state;
    struct test_clock clk;
    struct i2c_dev *d;
    struct ina3221_emu *emu = chip_on_clock(&clk, &d);
    ina3221_emu_set_input(emu, 0, 6400, 5000);   /* 160 and 625 LSB */
    ina3221_emu_set_input(emu, 1, -8000, 12000); /* -200 and 1500 LSB */
    ina3221_emu_set_input(emu, 2, 40, 3304);     /* 1 and 413 LSB */
    wr(d, INA3221_REG_CONFIG, 0x7007);           /* 3 channels, 140 + 140 us, AVG 1 */

    /* shunt ch1 ends at 140 us, bus ch1 at 280, ..., bus ch3 (end of cycle) at 840 */
    clk.now_ns = 139 * US;
    assert_int_equal(rd(d, 0x01), 0);
    clk.now_ns = 140 * US;
    assert_int_equal(rd(d, 0x01), 0x0500);
    assert_int_equal(rd(d, 0x02), 0);
    clk.now_ns = 420 * US;
    assert_int_equal(ina3221_decode_shunt_uv(rd(d, 0x03)), -8000);
    assert_int_equal(rd(d, 0x04), 0);
    clk.now_ns = 839 * US;
    assert_int_equal(rd(d, INA3221_REG_MASK_ENABLE) & INA3221_MASK_CVRF, 0);
    assert_int_equal(rd(d, 0x06), 0);
    clk.now_ns = 840 * US;
    assert_int_equal(ina3221_emu_peek(emu, INA3221_REG_MASK_ENABLE) & INA3221_MASK_CVRF, 1);
    assert_int_equal(rd(d, INA3221_REG_MASK_ENABLE) & INA3221_MASK_CVRF, 1);
    assert_int_equal(rd(d, INA3221_REG_MASK_ENABLE) & INA3221_MASK_CVRF, 0); /* read cleared it */
    assert_int_equal(ina3221_decode_shunt_uv(rd(d, 0x01)), 6400);
    assert_int_equal(ina3221_decode_bus_mv(rd(d, 0x02)), 5000);
    assert_int_equal(ina3221_decode_shunt_uv(rd(d, 0x03)), -8000);
    assert_int_equal(ina3221_decode_bus_mv(rd(d, 0x04)), 12000);
    assert_int_equal(ina3221_decode_shunt_uv(rd(d, 0x05)), 40);
    assert_int_equal(ina3221_decode_bus_mv(rd(d, 0x06)), 3304);
    assert_int_equal(rd(d, INA3221_REG_SHUNT_SUM), 0); /* no channel selected for the sum */

    /* summation of channels 1 and 2, from the next cycle on */
    wr(d, INA3221_REG_MASK_ENABLE, INA3221_MASK_SCC(0) | INA3221_MASK_SCC(1));
    clk.now_ns = 1680 * US;
    assert_int_equal(ina3221_decode_shunt_sum_uv(rd(d, INA3221_REG_SHUNT_SUM)), -1600);
    assert_int_equal(rd(d, INA3221_REG_MASK_ENABLE), 0x6001);

    /* CVRF is a flag, not a counter: many cycles later it reads set once */
    clk.now_ns = 10 * MS;
    assert_int_equal(rd(d, INA3221_REG_MASK_ENABLE) & INA3221_MASK_CVRF, 1);
    assert_int_equal(rd(d, INA3221_REG_MASK_ENABLE) & INA3221_MASK_CVRF, 0);
    struct ina3221_emu_stats st;
    ina3221_emu_get_stats(emu, &st);
    assert_int_equal(st.cycles, 10000 / 840);
    assert_int_equal(st.cvrf_reads, 3);
    i2c_dev_close(d);
    ina3221_emu_release(emu);
}

static void test_emu_config_write_and_modes(void **state)
{
    (void)state;
    struct test_clock clk;
    struct i2c_dev *d;
    struct ina3221_emu *emu = chip_on_clock(&clk, &d);
    struct ina3221_emu_stats st;

    wr(d, INA3221_REG_CONFIG, 0x7007);
    clk.now_ns = 840 * US;
    assert_int_equal(ina3221_emu_peek(emu, INA3221_REG_MASK_ENABLE) & 1, 1);
    /* a CONFIG write clears CVRF and restarts the cycle at that instant */
    clk.now_ns = 900 * US;
    wr(d, INA3221_REG_CONFIG, 0x7007);
    assert_int_equal(ina3221_emu_peek(emu, INA3221_REG_MASK_ENABLE) & 1, 0);
    clk.now_ns = (900 + 839) * US;
    assert_int_equal(ina3221_emu_peek(emu, INA3221_REG_MASK_ENABLE) & 1, 0);
    clk.now_ns = (900 + 840) * US;
    assert_int_equal(ina3221_emu_peek(emu, INA3221_REG_MASK_ENABLE) & 1, 1);

    /* power-down: no conversion, and the write leaves CVRF alone */
    wr(d, INA3221_REG_CONFIG, 0x7000);
    assert_int_equal(ina3221_emu_peek(emu, INA3221_REG_MASK_ENABLE) & 1, 1);
    ina3221_emu_get_stats(emu, &st);
    uint64_t cycles = st.cycles;
    clk.now_ns += 100 * MS;
    ina3221_emu_get_stats(emu, &st);
    assert_int_equal(st.cycles, cycles);

    /* single shot of shunt and bus: one cycle, then idle */
    wr(d, INA3221_REG_CONFIG, 0x7003);
    assert_int_equal(ina3221_emu_peek(emu, INA3221_REG_MASK_ENABLE) & 1, 0);
    clk.now_ns += 840 * US;
    ina3221_emu_get_stats(emu, &st);
    assert_int_equal(st.cycles, cycles + 1);
    assert_int_equal(rd(d, INA3221_REG_MASK_ENABLE) & 1, 1);
    clk.now_ns += 100 * MS;
    ina3221_emu_get_stats(emu, &st);
    assert_int_equal(st.cycles, cycles + 1);
    assert_int_equal(rd(d, INA3221_REG_MASK_ENABLE) & 1, 0);

    /* continuous shunt only: a cycle is 3 x 140 us, bus registers do not move */
    ina3221_emu_set_input(emu, 0, 400, 5000);
    wr(d, INA3221_REG_CONFIG, 0x7005);
    clk.now_ns += 419 * US;
    assert_int_equal(rd(d, INA3221_REG_MASK_ENABLE) & 1, 0);
    clk.now_ns += 1 * US;
    assert_int_equal(rd(d, INA3221_REG_MASK_ENABLE) & 1, 1);
    assert_int_equal(ina3221_decode_shunt_uv(rd(d, 0x01)), 400);
    i2c_dev_close(d);
    ina3221_emu_release(emu);
}

static void test_emu_reset_bit(void **state)
{
    (void)state;
    struct test_clock clk;
    struct i2c_dev *d;
    struct ina3221_emu *emu = chip_on_clock(&clk, &d);
    wr(d, INA3221_REG_CONFIG, 0x4007);
    wr(d, 0x07, 0x1000);
    wr(d, INA3221_REG_MASK_ENABLE, 0x0C00);
    clk.now_ns = 280 * US;
    assert_int_not_equal(rd(d, 0x01), 0);
    wr(d, INA3221_REG_CONFIG, 0x8000 | 0x4007); /* RST wins: everything to power-on values */
    assert_int_equal(rd(d, INA3221_REG_CONFIG), 0x7127);
    assert_int_equal(rd(d, 0x07), 0x7FF8);
    assert_int_equal(rd(d, 0x01), 0);
    assert_int_equal(rd(d, INA3221_REG_MASK_ENABLE), 0);
    /* and it converts again with the power-on timing: 6.6 ms per cycle */
    clk.now_ns += 6599 * US;
    assert_int_equal(rd(d, INA3221_REG_MASK_ENABLE) & 1, 0);
    clk.now_ns += 1 * US;
    assert_int_equal(rd(d, INA3221_REG_MASK_ENABLE) & 1, 1);
    assert_int_equal(ina3221_decode_shunt_uv(rd(d, 0x01)), 4000); /* default input */
    i2c_dev_close(d);
    ina3221_emu_release(emu);
}

static void test_emu_averaging_filter(void **state)
{
    (void)state;
    struct test_clock clk;
    struct i2c_dev *d;
    struct ina3221_emu *emu = chip_on_clock(&clk, &d);
    ina3221_emu_set_input(emu, 0, 4000, 0); /* 100 LSB */
    wr(d, INA3221_REG_CONFIG, 0x4207);      /* ch1, AVG 4, 140 + 140 us: cycle 280 us */
    for (int k = 1; k <= 12; k++) {
        clk.now_ns = k * 280 * US;
        /* CVRF every cycle, averaging or not */
        assert_int_equal(rd(d, INA3221_REG_MASK_ENABLE) & 1, 1);
        long expected = lround(100.0 * (1.0 - pow(0.75, k)));
        assert_int_equal(ina3221_data_code(rd(d, 0x01)), expected);
    }
    clk.now_ns = 200 * 280 * US;
    assert_int_equal(ina3221_decode_shunt_uv(rd(d, 0x01)), 4000); /* settled */
    /* a negative step runs the same way down */
    ina3221_emu_set_input(emu, 0, -4000, 0);
    clk.now_ns = 201 * 280 * US;
    assert_int_equal(ina3221_data_code(rd(d, 0x01)), 50);
    clk.now_ns = 203 * 280 * US; /* (skipping k = 2: 12.5 sits on a rounding edge) */
    assert_int_equal(ina3221_data_code(rd(d, 0x01)), -16); /* -100 + 200 * 0.75^3 */
    /* out-of-range inputs clamp to full scale */
    wr(d, INA3221_REG_CONFIG, 0x4007);
    ina3221_emu_set_input(emu, 0, 500000, 40000);
    clk.now_ns += 280 * US;
    assert_int_equal(rd(d, 0x01), 0x7FF8);
    assert_int_equal(rd(d, 0x02), 0x7FF8);
    ina3221_emu_set_input(emu, 0, -500000, -40000);
    clk.now_ns += 280 * US;
    assert_int_equal(rd(d, 0x01), 0x8000);
    assert_int_equal(rd(d, 0x02), 0x8000);
    i2c_dev_close(d);
    ina3221_emu_release(emu);
}

/* A ramp of 40 uV per microsecond on every channel's shunt. */
static void ramp_signal(void *ctx, int64_t t_ns, unsigned channel,
                        struct ina3221_emu_input *out)
{
    (void)ctx;
    (void)channel;
    out->shunt_uv = (double)(t_ns / US) * 40.0;
    out->bus_mv = 1000;
}

static void test_emu_signal_function(void **state)
{
    (void)state;
    struct test_clock clk;
    struct i2c_dev *d;
    struct ina3221_emu *emu = chip_on_clock(&clk, &d);
    ina3221_emu_set_signal(emu, ramp_signal, NULL);
    wr(d, INA3221_REG_CONFIG, 0x4007);
    clk.now_ns = 280 * US;
    /* the shunt conversion ran from 0 to 140 us: sampled at its midpoint, 70 us */
    assert_int_equal(ina3221_data_code(rd(d, 0x01)), 70);
    clk.now_ns = 560 * US;
    assert_int_equal(ina3221_data_code(rd(d, 0x01)), 350);
    ina3221_emu_set_input(emu, 0, 80, 1000); /* back to constant inputs */
    clk.now_ns = 840 * US;
    assert_int_equal(ina3221_data_code(rd(d, 0x01)), 2);
    i2c_dev_close(d);
    ina3221_emu_release(emu);
}

static void test_emu_faults(void **state)
{
    (void)state;
    struct test_clock clk;
    struct i2c_dev *d;
    struct ina3221_emu *emu = chip_on_clock(&clk, &d);
    uint16_t v;

    /* EIO for the next N transfers, reads and writes alike */
    ina3221_emu_fail_next(emu, 2, 0);
    assert_int_equal(i2c_dev_read_be16(d, INA3221_REG_CONFIG, &v), -EIO);
    assert_int_equal(i2c_dev_write_be16(d, INA3221_REG_CONFIG, 0x7007), -EIO);
    assert_int_equal(rd(d, INA3221_REG_CONFIG), 0x7127); /* the failed write did nothing */
    ina3221_emu_fail_next(emu, 1, ETIMEDOUT);
    assert_int_equal(i2c_dev_read_be16(d, INA3221_REG_CONFIG, &v), -ETIMEDOUT);
    assert_int_equal(rd(d, INA3221_REG_CONFIG), 0x7127);

    /* a stuck register: reads return the value, writes are lost */
    ina3221_emu_stick(emu, INA3221_REG_CONFIG, 0x7127);
    wr(d, INA3221_REG_CONFIG, 0x7007);
    assert_int_equal(rd(d, INA3221_REG_CONFIG), 0x7127);
    assert_int_equal(ina3221_emu_peek(emu, INA3221_REG_CONFIG), 0x7127);
    ina3221_emu_unstick(emu, INA3221_REG_CONFIG);
    wr(d, INA3221_REG_CONFIG, 0x7007);
    assert_int_equal(rd(d, INA3221_REG_CONFIG), 0x7007);
    ina3221_emu_stick(emu, INA3221_REG_MASK_ENABLE, 0x0000); /* CVRF never shows */
    clk.now_ns += 10 * MS;
    assert_int_equal(rd(d, INA3221_REG_MASK_ENABLE), 0);
    ina3221_emu_unstick(emu, INA3221_REG_MASK_ENABLE);
    assert_int_equal(rd(d, INA3221_REG_MASK_ENABLE) & 1, 1);

    /* a vanished device: every transfer fails; it comes back as it was */
    ina3221_emu_vanish(emu, ENXIO);
    assert_int_equal(i2c_dev_read_be16(d, INA3221_REG_CONFIG, &v), -ENXIO);
    assert_int_equal(i2c_dev_write_be16(d, INA3221_REG_CONFIG, 0x7127), -ENXIO);
    ina3221_emu_vanish(emu, EREMOTEIO);
    assert_int_equal(i2c_dev_read_be16(d, INA3221_REG_DIE_ID, &v), -EREMOTEIO);
    ina3221_emu_vanish(emu, 0);
    assert_int_equal(rd(d, INA3221_REG_CONFIG), 0x7007);

    struct ina3221_emu_stats st;
    ina3221_emu_get_stats(emu, &st);
    assert_int_equal(st.failed, 6);

    /* a slow bus: each transfer takes its time (only a lower bound is checked) */
    ina3221_emu_set_transfer_us(emu, 2000);
    int64_t t0 = clock_mono_ns();
    rd(d, INA3221_REG_DIE_ID);
    assert_true(clock_mono_ns() - t0 >= 2 * MS);
    ina3221_emu_set_transfer_us(emu, 0);
    i2c_dev_close(d);
    ina3221_emu_release(emu);
}

static void test_emu_registry_and_driver(void **state)
{
    (void)state;
    char err[200];
    struct ina3221_emu *emu, *again;
    assert_int_equal(ina3221_emu_create(BUS, ADDR, &emu, err, sizeof err), 0);
    assert_int_equal(ina3221_emu_create(BUS, ADDR, &again, err, sizeof err), -1);
    assert_null(again);
    assert_string_equal(err, "an emulated INA3221 already sits at 0x40 on emulated i2c-1");
    assert_int_equal(ina3221_emu_create(BUS, 0x44, &again, err, sizeof err), -1);
    assert_string_equal(err, "0x44 is not an INA3221 address (0x40..0x43)");
    assert_int_equal(ina3221_emu_create(-1, ADDR, &again, err, sizeof err), -1);

    /* references: the chip lives while anyone holds one */
    struct ina3221_emu *got = ina3221_emu_get(BUS, ADDR);
    assert_ptr_equal(got, emu);
    assert_null(ina3221_emu_get(BUS, 0x41));
    assert_null(ina3221_emu_get(BUS + 1, ADDR));
    ina3221_emu_release(emu);
    got = ina3221_emu_get(BUS, ADDR);
    assert_ptr_equal(got, emu);
    ina3221_emu_release(got);
    ina3221_emu_release(emu);
    assert_null(ina3221_emu_get(BUS, ADDR));
    ina3221_emu_release(NULL);

    /* a kernel driver owns the address: refused unless forced */
    assert_int_equal(ina3221_emu_create(BUS, ADDR, &emu, err, sizeof err), 0);
    ina3221_emu_bind_driver(emu, "ina3221");
    struct i2c_dev *d = NULL;
    assert_int_equal(ina3221_emu_open(BUS, ADDR, false, &d, err, sizeof err), -1);
    assert_null(d);
    assert_string_equal(err, "address 0x40 on emulated i2c-1 is owned by a kernel driver "
                             "(ina3221); unbind it or set force = true");
    assert_int_equal(ina3221_emu_open(BUS, ADDR, true, &d, err, sizeof err), 0);
    assert_int_equal(rd(d, INA3221_REG_DIE_ID), 0x3220);
    i2c_dev_close(d);
    ina3221_emu_release(emu);

    /* opening an empty address makes a chip with the default inputs, gone at close */
    assert_int_equal(ina3221_emu_open(BUS, 0x43, false, &d, err, sizeof err), 0);
    struct ina3221_emu *auto_chip = ina3221_emu_get(BUS, 0x43);
    assert_non_null(auto_chip);
    struct test_clock clk = {0};
    ina3221_emu_set_clock(auto_chip, test_clock_now, &clk);
    clk.now_ns = 6600 * US;
    for (unsigned c = 0; c < 3; c++) {
        assert_int_equal(ina3221_decode_shunt_uv(rd(d, ina3221_reg_shunt(c))), 4000 >> c);
        assert_int_equal(ina3221_decode_bus_mv(rd(d, ina3221_reg_bus(c))), 5000);
    }
    ina3221_emu_release(auto_chip);
    i2c_dev_close(d);
    assert_null(ina3221_emu_get(BUS, 0x43));
    assert_int_equal(ina3221_emu_open(BUS, 0x3F, false, &d, err, sizeof err), -1);
    i2c_dev_close(NULL);
}

/* ---- backend ---- */

static void emulated_options(const struct fixture *f, struct sensor_options *o)
{
    memset(o, 0, sizeof *o);
    o->sysfs_root = f->dir; /* no device-tree model there: the board is unknown */
    o->dev_root = f->dir;
    o->i2c_bus = BUS;
    o->i2c_addr = ADDR;
    o->shunt_uohm[0] = o->shunt_uohm[1] = o->shunt_uohm[2] = 5000;
    o->rail_names[0] = "VDD_IN";
    o->rail_names[1] = "VDD_CPU_GPU_CV";
    o->rail_names[2] = "VDD_SOC";
    o->request = (struct sensor_sampling){1, 140, 140, 0};
    o->i2c_emulated = true;
}

/* The way sensor.c opens a backend, without depending on its table. */
static int open_backend(struct sensor *s, const struct sensor_options *o, char *err,
                        size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->backend = &sensor_backend_ina3221_i2c;
    s->board_input_rail = -1;
    err[0] = '\0';
    int rc = s->backend->open(s, o, err, errlen);
    if (rc != 0) {
        assert_null(s->impl);
        assert_true(err[0] != '\0');
    }
    return rc;
}

static struct ina3221_emu *make_chip(int bus, unsigned addr)
{
    char err[200];
    struct ina3221_emu *emu;
    assert_int_equal(ina3221_emu_create(bus, addr, &emu, err, sizeof err), 0);
    return emu;
}

/* Writes a register of the chip at bus/addr as another bus user would. */
static void poke(int bus, unsigned addr, uint8_t reg, uint16_t value)
{
    char err[200];
    struct i2c_dev *d;
    assert_int_equal(ina3221_emu_open(bus, addr, false, &d, err, sizeof err), 0);
    wr(d, reg, value);
    i2c_dev_close(d);
}

static void test_backend_open_read_close(void **state)
{
    struct fixture *f = *state;
    struct ina3221_emu *emu = make_chip(BUS, ADDR);
    ina3221_emu_set_input(emu, 0, 6400, 5000);
    ina3221_emu_set_input(emu, 1, -8000, 12000);
    ina3221_emu_set_input(emu, 2, 40, 3304);
    poke(BUS, ADDR, INA3221_REG_CONFIG, 0x7727); /* as JetPack 4 leaves it */

    struct sensor_options o;
    emulated_options(f, &o);
    o.request.period_us = 1000;
    struct sensor s;
    char err[256];
    assert_int_equal(open_backend(&s, &o, err, sizeof err), 0);
    assert_true(s.backend->paces_itself);
    assert_int_equal(s.rail_count, 3);
    assert_string_equal(s.rails[0].name, "VDD_IN");
    assert_string_equal(s.rails[2].name, "VDD_SOC");
    assert_int_equal(s.board_input_rail, 0);
    assert_true(s.rails[0].is_board_input);
    assert_false(s.rails[1].is_board_input);
    assert_false(s.board_input_is_sum);
    assert_true(s.simulated);
    assert_contains(s.description, "emulated INA3221 at 0x40 on emulated i2c-1");
    assert_int_equal(s.asked.period_us, 1000);
    assert_int_equal(s.got.averaging, 1);
    assert_int_equal(s.got.bus_conv_us, 140);
    assert_int_equal(s.got.shunt_conv_us, 140);
    assert_int_equal(s.got.period_us, 840);
    assert_int_equal(ina3221_emu_peek(emu, INA3221_REG_CONFIG), 0x7007);

    struct ina3221_emu_stats before, after;
    ina3221_emu_get_stats(emu, &before);
    /* A cycle that ended before the snapshot may still have CVRF set, and the
     * first read takes it without a new cycle: likely when this thread was held
     * up for a cycle (0.84 ms) after open, on a loaded machine or under qemu.
     * Peeking after the snapshot can also count a cycle that ended since, which
     * loosens the bound below by that one cycle only. */
    uint64_t pending =
        (ina3221_emu_peek(emu, INA3221_REG_MASK_ENABLE) & INA3221_MASK_CVRF) ? 1 : 0;
    int64_t last_t = 0;
    const int reads = 20;
    for (int i = 0; i < reads; i++) {
        struct sensor_sample smp;
        assert_int_equal(s.backend->read(&s, &smp, err, sizeof err), 0);
        assert_true(smp.t_ns > last_t);
        assert_true(smp.t_ns <= clock_mono_ns());
        last_t = smp.t_ns;
        assert_near(smp.voltage_mv[0], 5000, 1e-9);
        assert_near(smp.current_ma[0], 1280, 1e-9);
        assert_near(smp.power_mw[0], 6400, 1e-9);
        assert_near(smp.voltage_mv[1], 12000, 1e-9);
        assert_near(smp.current_ma[1], -1600, 1e-9); /* reverse current stays negative */
        assert_near(smp.power_mw[1], -19200, 1e-9);
        assert_near(smp.voltage_mv[2], 3304, 1e-9);
        assert_near(smp.current_ma[2], 8, 1e-9);
        assert_near(smp.power_mw[2], 26.432, 1e-9);
    }
    ina3221_emu_get_stats(emu, &after);
    /* every sample consumed exactly one CVRF: never the same conversion twice */
    assert_int_equal(after.cvrf_reads - before.cvrf_reads, reads);
    assert_true(after.cycles - before.cycles + pending >= (uint64_t)reads);
    assert_int_equal(after.config_writes - before.config_writes, 0);

    s.backend->close(&s);
    assert_null(s.impl);
    assert_int_equal(ina3221_emu_peek(emu, INA3221_REG_CONFIG), 0x7727); /* restored */
    ina3221_emu_get_stats(emu, &after);
    assert_int_equal(after.config_writes, 3); /* poke, open, close */
    ina3221_emu_release(emu);
}

static void test_backend_wrong_ids_write_nothing(void **state)
{
    struct fixture *f = *state;
    struct ina3221_emu *emu = make_chip(BUS, ADDR);
    ina3221_emu_stick(emu, INA3221_REG_MANUFACTURER_ID, 0x1234);
    ina3221_emu_stick(emu, INA3221_REG_DIE_ID, 0x5678);
    struct sensor_options o;
    emulated_options(f, &o);
    struct sensor s;
    char err[256];
    assert_int_equal(open_backend(&s, &o, err, sizeof err), -1);
    assert_contains(err, "not an INA3221 at 0x40 on emulated i2c-1: manufacturer 0x1234, "
                         "die 0x5678");
    struct ina3221_emu_stats st;
    ina3221_emu_get_stats(emu, &st);
    assert_int_equal(st.writes, 0);
    assert_int_equal(ina3221_emu_peek(emu, INA3221_REG_CONFIG), 0x7127);

    /* right manufacturer, wrong die (an INA226-like part) */
    ina3221_emu_unstick(emu, INA3221_REG_MANUFACTURER_ID);
    ina3221_emu_stick(emu, INA3221_REG_DIE_ID, 0x2260);
    assert_int_equal(open_backend(&s, &o, err, sizeof err), -1);
    assert_contains(err, "manufacturer 0x5449, die 0x2260");
    /* an ID read that fails: nothing written either */
    ina3221_emu_unstick(emu, INA3221_REG_DIE_ID);
    ina3221_emu_fail_next(emu, 1, EIO);
    assert_int_equal(open_backend(&s, &o, err, sizeof err), -1);
    assert_contains(err, "reading manufacturer ID of the INA3221 at 0x40 on emulated i2c-1: "
                         "Input/output error");
    ina3221_emu_get_stats(emu, &st);
    assert_int_equal(st.writes, 0);
    ina3221_emu_release(emu);
}

static void test_backend_bad_request_writes_nothing(void **state)
{
    struct fixture *f = *state;
    struct ina3221_emu *emu = make_chip(BUS, ADDR);
    struct sensor_options o;
    emulated_options(f, &o);
    struct sensor s;
    char err[256];
    o.request.averaging = 3;
    assert_int_equal(open_backend(&s, &o, err, sizeof err), -1);
    assert_string_equal(err, "averaging 3 is not an INA3221 setting (allowed: 1, 4, 16, 64, "
                             "128, 256, 512, 1024 samples)");
    o.request.averaging = 1;
    o.request.shunt_conv_us = 1000;
    assert_int_equal(open_backend(&s, &o, err, sizeof err), -1);
    assert_contains(err, "allowed: 140, 204, 332, 588, 1100, 2116, 4156, 8244 us");
    struct ina3221_emu_stats st;
    ina3221_emu_get_stats(emu, &st);
    assert_int_equal(st.writes, 0);

    /* zeros keep what the chip runs with */
    o.request = (struct sensor_sampling){0, 0, 0, 0};
    assert_int_equal(open_backend(&s, &o, err, sizeof err), 0);
    assert_int_equal(s.got.averaging, 1);
    assert_int_equal(s.got.bus_conv_us, 1100);
    assert_int_equal(s.got.period_us, 6600);
    s.backend->close(&s);
    ina3221_emu_release(emu);
}

static void test_backend_option_errors(void **state)
{
    struct fixture *f = *state;
    struct sensor_options o;
    struct sensor s;
    char err[256];

    emulated_options(f, &o);
    o.i2c_addr = 0x44;
    assert_int_equal(open_backend(&s, &o, err, sizeof err), -1);
    assert_string_equal(err, "sensor.i2c_addr = 0x44 is not an INA3221 address (0x40..0x43)");

    emulated_options(f, &o);
    o.shunt_uohm[1] = 0;
    assert_int_equal(open_backend(&s, &o, err, sizeof err), -1);
    assert_contains(err, "no shunt resistance for channel 2 (VDD_CPU_GPU_CV)");

    emulated_options(f, &o);
    o.rail_names[0] = o.rail_names[1] = o.rail_names[2] = "NC";
    assert_int_equal(open_backend(&s, &o, err, sizeof err), -1);
    assert_contains(err, "no INA3221 channel is connected");

    emulated_options(f, &o);
    o.i2c_addr = 0; /* and no board to take it from */
    assert_int_equal(open_backend(&s, &o, err, sizeof err), -1);
    assert_contains(err, "no device-tree model at");
    assert_contains(err, "set sensor.i2c_bus, i2c_addr, shunt_uohm and rails");

    emulated_options(f, &o);
    o.i2c_bus = -1;
    assert_int_equal(open_backend(&s, &o, err, sizeof err), -1);
    assert_contains(err, "sensor.i2c_bus is not set");

    emulated_options(f, &o);
    o.rail_names[0] = "A_RAIL_NAME_THAT_IS_FAR_TOO_LONG_TO_KEEP";
    assert_int_equal(open_backend(&s, &o, err, sizeof err), -1);
    assert_contains(err, "is longer than 31 characters");

    /* channels without a rail are switched off and cost no conversion time */
    struct ina3221_emu *emu = make_chip(BUS, ADDR);
    emulated_options(f, &o);
    o.rail_names[1] = "NC";
    o.rail_names[2] = NULL;
    assert_int_equal(open_backend(&s, &o, err, sizeof err), 0);
    assert_int_equal(s.rail_count, 1);
    assert_int_equal(ina3221_emu_peek(emu, INA3221_REG_CONFIG), 0x4007);
    assert_int_equal(s.got.period_us, 280);
    s.backend->close(&s);
    assert_int_equal(ina3221_emu_peek(emu, INA3221_REG_CONFIG), 0x7127);
    ina3221_emu_release(emu);
}

static void test_backend_read_faults(void **state)
{
    struct fixture *f = *state;
    struct ina3221_emu *emu = make_chip(BUS, ADDR);
    struct sensor_options o;
    emulated_options(f, &o);
    struct sensor s;
    char err[256];
    struct sensor_sample smp;
    assert_int_equal(open_backend(&s, &o, err, sizeof err), 0);
    assert_int_equal(s.backend->read(&s, &smp, err, sizeof err), 0);

    /* an EIO burst: each failed transfer is a failed read, then it recovers */
    ina3221_emu_fail_next(emu, 3, EIO);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s.backend->read(&s, &smp, err, sizeof err), -1);
        assert_string_equal(err, "reading mask/enable of the INA3221 at 0x40 on emulated "
                                 "i2c-1: Input/output error");
    }
    assert_int_equal(s.backend->read(&s, &smp, err, sizeof err), 0);
    assert_near(smp.power_mw[0], 4000, 1e-9); /* default input, 5 mOhm */

    /* CVRF never set: a bounded wait that ends in an error, not a hang */
    ina3221_emu_stick(emu, INA3221_REG_MASK_ENABLE, 0x0000);
    int64_t t0 = clock_mono_ns();
    assert_int_equal(s.backend->read(&s, &smp, err, sizeof err), -1);
    assert_true(clock_mono_ns() - t0 < 2000 * MS);
    assert_contains(err, "no fresh conversion from the INA3221 at 0x40 on emulated i2c-1");
    assert_contains(err, "one cycle is 840 us");
    ina3221_emu_unstick(emu, INA3221_REG_MASK_ENABLE);
    assert_int_equal(s.backend->read(&s, &smp, err, sizeof err), 0);

    /* stuck data registers are read as they are */
    ina3221_emu_stick(emu, 0x01, 0xF9C0); /* -8000 uV */
    assert_int_equal(s.backend->read(&s, &smp, err, sizeof err), 0);
    assert_near(smp.current_ma[0], -1600, 1e-9);
    ina3221_emu_unstick(emu, 0x01);

    /* the device vanishes: reads fail with the bus's error */
    ina3221_emu_vanish(emu, ENXIO);
    assert_int_equal(s.backend->read(&s, &smp, err, sizeof err), -1);
    assert_contains(err, "No such device or address");
    ina3221_emu_vanish(emu, EREMOTEIO);
    assert_int_equal(s.backend->read(&s, &smp, err, sizeof err), -1);
    assert_contains(err, "Remote I/O error");
    /* and close does not hang or leak; the CONFIG could not be put back */
    t0 = clock_mono_ns();
    s.backend->close(&s);
    assert_true(clock_mono_ns() - t0 < 2000 * MS);
    ina3221_emu_vanish(emu, 0);
    assert_int_equal(ina3221_emu_peek(emu, INA3221_REG_CONFIG), 0x7007);
    ina3221_emu_release(emu);
}

static void test_backend_open_faults(void **state)
{
    struct fixture *f = *state;
    struct ina3221_emu *emu = make_chip(BUS, ADDR);
    struct sensor_options o;
    emulated_options(f, &o);
    struct sensor s;
    char err[256];

    ina3221_emu_vanish(emu, ENXIO);
    assert_int_equal(open_backend(&s, &o, err, sizeof err), -1);
    assert_contains(err, "reading manufacturer ID of the INA3221 at 0x40 on emulated i2c-1: "
                         "No such device or address");
    ina3221_emu_vanish(emu, 0);

    /* CONFIG stuck at the power-on value: open works, got says what the chip holds */
    ina3221_emu_stick(emu, INA3221_REG_CONFIG, 0x7127);
    assert_int_equal(open_backend(&s, &o, err, sizeof err), 0);
    assert_int_equal(s.asked.bus_conv_us, 140);
    assert_int_equal(s.got.bus_conv_us, 1100);
    assert_int_equal(s.got.shunt_conv_us, 1100);
    assert_int_equal(s.got.period_us, 6600);
    s.backend->close(&s);

    /* stuck with channels the request does not want: refused, nothing left changed */
    ina3221_emu_stick(emu, INA3221_REG_CONFIG, 0x4127);
    o.rail_names[2] = "NC";
    assert_int_equal(open_backend(&s, &o, err, sizeof err), -1);
    assert_contains(err, "did not take CONFIG 0x6007: it reads back 0x4127");
    ina3221_emu_unstick(emu, INA3221_REG_CONFIG);

    emulated_options(f, &o);
    assert_int_equal(ina3221_emu_peek(emu, INA3221_REG_CONFIG), 0x7127);

    /* a kernel driver owns the address */
    ina3221_emu_bind_driver(emu, "ina3221");
    assert_int_equal(open_backend(&s, &o, err, sizeof err), -1);
    assert_string_equal(err, "address 0x40 on emulated i2c-1 is owned by a kernel driver "
                             "(ina3221); unbind it or set force = true");
    o.force = true;
    assert_int_equal(open_backend(&s, &o, err, sizeof err), 0);
    s.backend->close(&s);
    ina3221_emu_release(emu);
}

static void test_backend_configure(void **state)
{
    struct fixture *f = *state;
    struct ina3221_emu *emu = make_chip(BUS, ADDR);
    struct sensor_options o;
    emulated_options(f, &o);
    struct sensor s;
    char err[256];
    struct sensor_sample smp;
    assert_int_equal(open_backend(&s, &o, err, sizeof err), 0);
    assert_non_null(s.backend->configure);

    struct sensor_sampling req = {4, 204, 332, 0};
    assert_int_equal(s.backend->configure(&s, &req, err, sizeof err), 0);
    assert_int_equal(ina3221_emu_peek(emu, INA3221_REG_CONFIG), 0x7257);
    assert_int_equal(s.got.averaging, 4);
    assert_int_equal(s.got.bus_conv_us, 204);
    assert_int_equal(s.got.shunt_conv_us, 332);
    assert_int_equal(s.got.period_us, 3 * (204 + 332));
    assert_int_equal(s.asked.averaging, 4);
    assert_int_equal(s.backend->read(&s, &smp, err, sizeof err), 0);

    /* not a datasheet value: refused, the chip keeps sampling as it was */
    struct ina3221_emu_stats before, after;
    ina3221_emu_get_stats(emu, &before);
    struct sensor_sampling bad = {4, 205, 332, 0};
    assert_int_equal(s.backend->configure(&s, &bad, err, sizeof err), -1);
    assert_contains(err, "bus conversion time 205 us is not an INA3221 setting");
    ina3221_emu_get_stats(emu, &after);
    assert_int_equal(after.writes, before.writes);
    assert_int_equal(s.got.period_us, 1608);

    /* zeros keep the current settings (not the ones found at open) */
    struct sensor_sampling keep = {0, 0, 140, 0};
    assert_int_equal(s.backend->configure(&s, &keep, err, sizeof err), 0);
    assert_int_equal(ina3221_emu_peek(emu, INA3221_REG_CONFIG), 0x7247);
    assert_int_equal(s.got.period_us, 3 * (204 + 140));

    /* the write fails: an error, and the chip is put back as it was */
    ina3221_emu_fail_next(emu, 1, EIO);
    struct sensor_sampling fast = {1, 140, 140, 0};
    assert_int_equal(s.backend->configure(&s, &fast, err, sizeof err), -1);
    assert_contains(err, "writing 0x7007 to CONFIG of the INA3221 at 0x40 on emulated i2c-1");
    assert_int_equal(ina3221_emu_peek(emu, INA3221_REG_CONFIG), 0x7247);
    assert_int_equal(s.got.period_us, 3 * (204 + 140));
    assert_int_equal(s.backend->read(&s, &smp, err, sizeof err), 0);

    s.backend->close(&s);
    assert_int_equal(ina3221_emu_peek(emu, INA3221_REG_CONFIG), 0x7127); /* found at open */
    ina3221_emu_release(emu);
}

/* Every board of the table, on emulated chips with the default inputs. */
static void test_backend_every_board(void **state)
{
    struct fixture *f = *state;
    static const double default_shunt_uv[3] = {4000, 2000, 1000};
    assert_true(boards_count() > 0);
    for (size_t i = 0; i < boards_count(); i++) {
        const struct board *b = boards_at(i);
        write_model(f, b->model_match);
        assert_ptr_equal(boards_match(b->model_match), b);

        struct sensor_options o;
        memset(&o, 0, sizeof o);
        o.sysfs_root = f->dir;
        o.dev_root = f->dir;
        o.i2c_bus = -1;
        o.request = (struct sensor_sampling){1, 140, 140, 0};
        o.i2c_emulated = true;
        struct sensor s;
        char err[256];
        if (open_backend(&s, &o, err, sizeof err) != 0) {
            print_error("board %s: %s\n", b->name, err);
            fail();
        }
        assert_contains(s.description, b->name);

        unsigned expect_rails = 0, max_channels = 0;
        for (unsigned k = 0; k < b->chip_count; k++) {
            unsigned channels = 0;
            for (unsigned c = 0; c < 3; c++) {
                const char *rail = b->chips[k].channels[c].rail;
                if (rail != NULL && strcmp(rail, "NC") != 0)
                    channels++;
            }
            expect_rails += channels;
            if (channels > max_channels)
                max_channels = channels;
        }
        assert_int_equal(s.rail_count, expect_rails);
        assert_int_equal(s.got.period_us, max_channels * 280);
        if (b->input_rail != NULL) {
            assert_true(s.board_input_rail >= 0);
            assert_string_equal(s.rails[s.board_input_rail].name, b->input_rail);
            assert_false(s.board_input_is_sum);
        } else {
            assert_int_equal(s.board_input_rail, -1);
            assert_int_equal(s.board_input_is_sum, b->input_is_sum);
        }

        struct sensor_sample smp;
        for (int n = 0; n < 3; n++)
            assert_int_equal(s.backend->read(&s, &smp, err, sizeof err), 0);
        unsigned r = 0;
        for (unsigned k = 0; k < b->chip_count; k++) {
            for (unsigned c = 0; c < 3; c++) {
                const struct board_channel *bc = &b->chips[k].channels[c];
                if (bc->rail == NULL || strcmp(bc->rail, "NC") == 0)
                    continue;
                assert_string_equal(s.rails[r].name, bc->rail);
                double ma = default_shunt_uv[c] / bc->shunt_uohm * 1000.0;
                assert_near(smp.voltage_mv[r], 5000, 1e-9);
                assert_near(smp.current_ma[r], ma, 1e-9);
                assert_near(smp.power_mw[r], 5.0 * ma, 1e-9);
                r++;
            }
        }
        s.backend->close(&s);
        /* the chips made for this sensor are gone with it */
        for (unsigned k = 0; k < b->chip_count; k++)
            assert_null(ina3221_emu_get(b->chips[k].i2c_bus, b->chips[k].addr));
    }
}

static const struct board *board_with_chips(unsigned chips)
{
    for (size_t i = 0; i < boards_count(); i++) {
        if (boards_at(i)->chip_count == chips)
            return boards_at(i);
    }
    return NULL;
}

static void test_backend_two_chips(void **state)
{
    struct fixture *f = *state;
    const struct board *b = board_with_chips(2);
    assert_non_null(b);
    write_model(f, b->model_match);
    struct ina3221_emu *emu[2];
    for (unsigned k = 0; k < 2; k++) {
        emu[k] = make_chip(b->chips[k].i2c_bus, b->chips[k].addr);
        poke(b->chips[k].i2c_bus, b->chips[k].addr, INA3221_REG_CONFIG, 0x7727);
    }
    struct sensor_options o;
    memset(&o, 0, sizeof o);
    o.sysfs_root = f->dir;
    o.i2c_bus = -1;
    o.request = (struct sensor_sampling){1, 140, 140, 0};
    o.i2c_emulated = true;
    struct sensor s;
    char err[256];

    /* IDs of both are checked before either is written */
    ina3221_emu_stick(emu[1], INA3221_REG_DIE_ID, 0x0000);
    assert_int_equal(open_backend(&s, &o, err, sizeof err), -1);
    assert_contains(err, "not an INA3221 at");
    assert_int_equal(ina3221_emu_peek(emu[0], INA3221_REG_CONFIG), 0x7727);
    ina3221_emu_unstick(emu[1], INA3221_REG_DIE_ID);

    /* the second chip refuses its CONFIG: the first is put back */
    ina3221_emu_stick(emu[1], INA3221_REG_CONFIG, 0x0127);
    assert_int_equal(open_backend(&s, &o, err, sizeof err), -1);
    assert_int_equal(ina3221_emu_peek(emu[0], INA3221_REG_CONFIG), 0x7727);
    ina3221_emu_unstick(emu[1], INA3221_REG_CONFIG);

    assert_int_equal(open_backend(&s, &o, err, sizeof err), 0);
    struct ina3221_emu_stats before[2], after[2];
    for (unsigned k = 0; k < 2; k++)
        ina3221_emu_get_stats(emu[k], &before[k]);
    const int reads = 10;
    int64_t last = 0;
    for (int n = 0; n < reads; n++) {
        struct sensor_sample smp;
        assert_int_equal(s.backend->read(&s, &smp, err, sizeof err), 0);
        assert_true(smp.t_ns > last);
        last = smp.t_ns;
    }
    for (unsigned k = 0; k < 2; k++) {
        ina3221_emu_get_stats(emu[k], &after[k]);
        assert_int_equal(after[k].cvrf_reads - before[k].cvrf_reads, reads);
    }

    /* rails and shunts from the options describe one chip: they need i2c_addr */
    struct sensor s2;
    o.rail_names[0] = "X";
    o.shunt_uohm[0] = 1000;
    assert_int_equal(open_backend(&s2, &o, err, sizeof err), -1);
    assert_contains(err, "set sensor.i2c_addr to pick one");

    s.backend->close(&s);
    for (unsigned k = 0; k < 2; k++) {
        assert_int_equal(ina3221_emu_peek(emu[k], INA3221_REG_CONFIG), 0x7727);
        ina3221_emu_release(emu[k]);
    }

    /* i2c_addr picks one chip of the board; its bus and rails come from the table */
    o.rail_names[0] = NULL;
    o.shunt_uohm[0] = 0;
    o.i2c_addr = b->chips[1].addr;
    assert_int_equal(open_backend(&s, &o, err, sizeof err), 0);
    assert_contains(s.description, "emulated i2c-");
    assert_false(s.board_input_is_sum); /* one chip of two is not the whole board */
    s.backend->close(&s);
}

/* The backend under the real sampler thread, which calls read() back to back. */
static void test_backend_with_sampler(void **state)
{
    struct fixture *f = *state;
    struct ina3221_emu *emu = make_chip(BUS, ADDR);
    ina3221_emu_set_input(emu, 0, 6400, 5000);
    struct sensor_options o;
    emulated_options(f, &o);
    struct sensor *s = calloc(1, sizeof *s);
    assert_non_null(s);
    char err[256];
    assert_int_equal(open_backend(s, &o, err, sizeof err), 0);
    struct sampler *sp;
    assert_int_equal(sampler_start(s, 4096, &sp, err, sizeof err), 0);
    struct sampler_status st;
    int64_t give_up = clock_mono_ns() + 5000 * MS;
    do {
        clock_sleep_until_ns(clock_mono_ns() + 10 * MS);
        sampler_get_status(sp, &st);
    } while (st.samples_total < 50 && clock_mono_ns() < give_up);
    struct sensor_sample latest;
    assert_int_equal(sampler_latest(sp, &latest), 0);
    sampler_stop(sp);
    assert_true(st.samples_total >= 50);
    assert_int_equal(st.read_errors, 0);
    assert_near(latest.power_mw[0], 6400, 1e-9);
    struct ina3221_emu_stats es;
    ina3221_emu_get_stats(emu, &es);
    assert_true(es.cvrf_reads >= st.samples_total); /* one fresh conversion per sample */
    s->backend->close(s);
    free(s);
    assert_int_equal(ina3221_emu_peek(emu, INA3221_REG_CONFIG), 0x7127);
    ina3221_emu_release(emu);
}

static void test_linux_bus_errors(void **state)
{
    struct fixture *f = *state;
    struct sensor_options o;
    emulated_options(f, &o);
    o.i2c_emulated = false;
    struct sensor s;
    char err[512], expect[256];

    assert_int_equal(open_backend(&s, &o, err, sizeof err), -1);
    snprintf(expect, sizeof expect, "%s/i2c-1 does not exist", f->dir);
    assert_contains(err, expect);
    assert_false(s.simulated);

    /* something that is not an adapter */
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/i2c-1", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(open_backend(&s, &o, err, sizeof err), -1);
    snprintf(expect, sizeof expect, "%s/i2c-1 is not an I2C adapter device", f->dir);
    assert_contains(err, expect);

    struct i2c_dev *d = (struct i2c_dev *)1;
    assert_int_equal(i2c_linux_open(f->dir, f->dir, -1, 0x40, false, &d, err, sizeof err), -1);
    assert_null(d);
    assert_contains(err, "not a bus number");
    assert_int_equal(i2c_linux_open(f->dir, f->dir, 1, 0x80, false, &d, err, sizeof err), -1);
    assert_contains(err, "not a 7-bit device address");
}

int main(void)
{
    jp_log_set_level(JP_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_emu_power_on_and_byte_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_emu_conversion_timing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_emu_config_write_and_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_emu_reset_bit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_emu_averaging_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_emu_signal_function, setup, teardown),
        cmocka_unit_test_setup_teardown(test_emu_faults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_emu_registry_and_driver, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backend_open_read_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backend_wrong_ids_write_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backend_bad_request_writes_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_backend_option_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backend_read_faults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backend_open_faults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backend_configure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backend_every_board, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backend_two_chips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backend_with_sampler, setup, teardown),
        cmocka_unit_test_setup_teardown(test_linux_bus_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
