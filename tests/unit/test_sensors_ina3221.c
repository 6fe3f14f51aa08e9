/*
 * test_sensors_ina3221.c - the INA3221 register codec (sensors/ina3221.c):
 * register map and reset values, CONFIG fields and tables, CONFIG from a
 * sampling request (and the errors that list the allowed values), cycle time,
 * decoding of shunt, bus and sum registers at their limits and with negative
 * values, and the unit arithmetic to mA and mW.
 * Expected numbers come from datasheet SBOS576, not from the code.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sensors/ina3221.h"

#define assert_near(a, b, eps)                                                           \
    do {                                                                                 \
        double a_ = (a), b_ = (b);                                                       \
        if (!(fabs(a_ - b_) <= (eps))) {                                                 \
            print_error("%s = %.9g, expected %.9g +- %g\n", #a, a_, b_, (double)(eps)); \
            fail();                                                                      \
        }                                                                                \
    } while (0)

static void test_register_map(void **state)
{
    (void)state;
    assert_int_equal(ina3221_register_find(INA3221_REG_CONFIG)->reset, 0x7127);
    assert_int_equal(ina3221_register_find(INA3221_REG_MANUFACTURER_ID)->reset, 0x5449);
    assert_int_equal(ina3221_register_find(INA3221_REG_DIE_ID)->reset, 0x3220);
    assert_int_equal(ina3221_register_find(0x07)->reset, 0x7FF8);
    assert_int_equal(ina3221_register_find(0x0C)->reset, 0x7FF8);
    assert_int_equal(ina3221_register_find(INA3221_REG_SHUNT_SUM_LIMIT)->reset, 0x7FFE);
    assert_int_equal(ina3221_register_find(INA3221_REG_PV_UPPER)->reset, 0x2710);
    assert_int_equal(ina3221_register_find(INA3221_REG_PV_LOWER)->reset, 0x2328);
    /* data and ID registers are read-only */
    assert_int_equal(ina3221_register_find(0x01)->writable_mask, 0);
    assert_int_equal(ina3221_register_find(0x06)->writable_mask, 0);
    assert_int_equal(ina3221_register_find(INA3221_REG_DIE_ID)->writable_mask, 0);
    assert_null(ina3221_register_find(0x12));
    assert_null(ina3221_register_find(0xFD));
    assert_string_equal(ina3221_register_name(0x03), "shunt voltage ch2");
    assert_string_equal(ina3221_register_name(0x06), "bus voltage ch3");
    assert_string_equal(ina3221_register_name(0x42), "unknown register");
    assert_int_equal(ina3221_reg_shunt(0), 0x01);
    assert_int_equal(ina3221_reg_bus(0), 0x02);
    assert_int_equal(ina3221_reg_shunt(2), 0x05);
    assert_int_equal(ina3221_reg_bus(2), 0x06);
    /* every address listed once */
    for (size_t i = 0; i < ina3221_register_count(); i++) {
        for (size_t j = i + 1; j < ina3221_register_count(); j++)
            assert_int_not_equal(ina3221_register_at(i)->addr, ina3221_register_at(j)->addr);
    }
    assert_null(ina3221_register_at(ina3221_register_count()));
}

static void test_config_decode(void **state)
{
    (void)state;
    struct ina3221_config c;
    ina3221_config_decode(0x7127, &c); /* power-on */
    assert_true(c.channel_enabled[0] && c.channel_enabled[1] && c.channel_enabled[2]);
    assert_int_equal(c.averaging, 1);
    assert_int_equal(c.bus_conv_us, 1100);
    assert_int_equal(c.shunt_conv_us, 1100);
    assert_int_equal(c.mode, 7);
    assert_int_equal(ina3221_cycle_us(0x7127), 6600); /* 3 x 2.2 ms */

    ina3221_config_decode(0x7727, &c); /* JetPack 4's ina3221x: 64 samples */
    assert_int_equal(c.averaging, 64);
    assert_int_equal(ina3221_cycle_us(0x7727), 6600); /* averaging does not lengthen it */

    ina3221_config_decode(0x4FFD, &c); /* ch1 only, AVG 1024, VBUSCT 8244, VSHCT 8244, 101 */
    assert_true(c.channel_enabled[0]);
    assert_false(c.channel_enabled[1] || c.channel_enabled[2]);
    assert_int_equal(c.averaging, 1024);
    assert_int_equal(c.bus_conv_us, 8244);
    assert_int_equal(c.shunt_conv_us, 8244);
    assert_int_equal(c.mode, 5);
    assert_int_equal(ina3221_cycle_us(0x4FFD), 8244); /* shunt only */
    assert_int_equal(ina3221_channel_mask(0x4FFD), 1);
    assert_int_equal(ina3221_channel_mask(0x1000), 4); /* CH3en is bit 12 */
    assert_int_equal(ina3221_channel_mask(0x2000), 2);
    assert_int_equal(ina3221_channel_count(0x7127), 3);

    assert_int_equal(ina3221_cycle_us(0x7120), 0); /* power-down */
    assert_int_equal(ina3221_cycle_us(0x7124), 0); /* power-down too */
    assert_int_equal(ina3221_cycle_us(0x0127), 0); /* no channel */
    ina3221_config_decode(0xF127, &c);             /* RST is ignored */
    assert_int_equal(c.averaging, 1);
}

static void test_config_encode_round_trip(void **state)
{
    (void)state;
    char err[200];
    for (unsigned v = 0; v < 0x8000; v++) {
        struct ina3221_config c;
        uint16_t raw;
        ina3221_config_decode((uint16_t)v, &c);
        assert_int_equal(ina3221_config_encode(&c, &raw, err, sizeof err), 0);
        assert_int_equal(raw, v);
    }
    struct ina3221_config bad = {{true, false, false}, 3, 140, 140, 7};
    uint16_t raw = 0xABCD;
    assert_int_equal(ina3221_config_encode(&bad, &raw, err, sizeof err), -1);
    assert_int_equal(raw, 0xABCD);
    assert_non_null(strstr(err, "averaging 3"));
}

static void test_config_for_request(void **state)
{
    (void)state;
    char err[200];
    uint16_t out;
    struct sensor_sampling fast = {1, 140, 140, 0};
    assert_int_equal(ina3221_config_for_request(0x7127, &fast, 0x7, &out, err, sizeof err), 0);
    assert_int_equal(out, 0x7007);
    assert_int_equal(ina3221_cycle_us(out), 840); /* 3 x 0.28 ms */

    assert_int_equal(ina3221_config_for_request(0x7127, &fast, 0x1, &out, err, sizeof err), 0);
    assert_int_equal(out, 0x4007);
    assert_int_equal(ina3221_cycle_us(out), 280);

    /* channels 1 and 3, a mode that was power-down becomes continuous */
    assert_int_equal(ina3221_config_for_request(0x0120, &fast, 0x5, &out, err, sizeof err), 0);
    assert_int_equal(out, 0x5007);

    /* zeros keep what was found; period_us is not a chip field */
    struct sensor_sampling keep = {0, 0, 0, 1000};
    assert_int_equal(ina3221_config_for_request(0x7727, &keep, 0x7, &out, err, sizeof err), 0);
    assert_int_equal(out, 0x7727);
    assert_int_equal(ina3221_config_for_request(0x7727, NULL, 0x3, &out, err, sizeof err), 0);
    assert_int_equal(out, 0x6727);
    struct sensor_sampling avg16 = {16, 0, 332, 0};
    assert_int_equal(ina3221_config_for_request(0x7127, &avg16, 0x7, &out, err, sizeof err), 0);
    assert_int_equal(out, 0x7517); /* AVG 010, VBUSCT kept 100, VSHCT 010 */

    /* values the datasheet does not list: errors that list the ones it does */
    out = 0x1234;
    struct sensor_sampling bad_avg = {3, 140, 140, 0};
    assert_int_equal(ina3221_config_for_request(0x7127, &bad_avg, 7, &out, err, sizeof err), -1);
    assert_string_equal(err, "averaging 3 is not an INA3221 setting (allowed: 1, 4, 16, 64, "
                             "128, 256, 512, 1024 samples)");
    struct sensor_sampling bad_bus = {1, 150, 140, 0};
    assert_int_equal(ina3221_config_for_request(0x7127, &bad_bus, 7, &out, err, sizeof err), -1);
    assert_string_equal(err, "bus conversion time 150 us is not an INA3221 setting (allowed: "
                             "140, 204, 332, 588, 1100, 2116, 4156, 8244 us)");
    struct sensor_sampling bad_shunt = {1, 140, 8245, 0};
    assert_int_equal(ina3221_config_for_request(0x7127, &bad_shunt, 7, &out, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "shunt conversion time 8245 us"));
    assert_int_equal(ina3221_config_for_request(0x7127, &fast, 0, &out, err, sizeof err), -1);
    assert_non_null(strstr(err, "selects no INA3221 channel"));
    assert_int_equal(ina3221_config_for_request(0x7127, &fast, 8, &out, err, sizeof err), -1);
    assert_int_equal(out, 0x1234);
}

static void test_config_to_sampling(void **state)
{
    (void)state;
    struct sensor_sampling got;
    ina3221_config_to_sampling(0x7007, &got);
    assert_int_equal(got.averaging, 1);
    assert_int_equal(got.bus_conv_us, 140);
    assert_int_equal(got.shunt_conv_us, 140);
    assert_int_equal(got.period_us, 840);
    ina3221_config_to_sampling(0x7727, &got);
    assert_int_equal(got.averaging, 64);
    assert_int_equal(got.period_us, 6600); /* fresh values every cycle; averaging is lag */
    ina3221_config_to_sampling(0x4C47, &got); /* ch1, AVG 110, VBUSCT 001, VSHCT 000 */
    assert_int_equal(got.averaging, 512);
    assert_int_equal(got.bus_conv_us, 204);
    assert_int_equal(got.shunt_conv_us, 140);
    assert_int_equal(got.period_us, 344);
}

static void test_tables_and_formatting(void **state)
{
    (void)state;
    char buf[80];
    ina3221_format_averaging_values(buf, sizeof buf);
    assert_string_equal(buf, "1, 4, 16, 64, 128, 256, 512, 1024");
    ina3221_format_conv_times(buf, sizeof buf);
    assert_string_equal(buf, "140, 204, 332, 588, 1100, 2116, 4156, 8244");
    char small[8];
    ina3221_format_conv_times(small, sizeof small); /* truncates, stays terminated */
    assert_true(strlen(small) < sizeof small);
    assert_int_equal(ina3221_averaging_index(1), 0);
    assert_int_equal(ina3221_averaging_index(1024), 7);
    assert_int_equal(ina3221_averaging_index(0), -1);
    assert_int_equal(ina3221_averaging_index(2), -1);
    assert_int_equal(ina3221_conv_time_index(140), 0);
    assert_int_equal(ina3221_conv_time_index(1100), 4);
    assert_int_equal(ina3221_conv_time_index(8244), 7);
    assert_int_equal(ina3221_conv_time_index(1000), -1);
}

static void test_decode_shunt(void **state)
{
    (void)state;
    assert_int_equal(ina3221_decode_shunt_uv(0x0000), 0);
    assert_int_equal(ina3221_decode_shunt_uv(0x0008), 40);      /* one LSB */
    assert_int_equal(ina3221_decode_shunt_uv(0x0007), 0);       /* bits 2..0 unused */
    assert_int_equal(ina3221_decode_shunt_uv(0x000F), 40);
    assert_int_equal(ina3221_decode_shunt_uv(0x7FF8), 163800);  /* +full scale */
    assert_int_equal(ina3221_decode_shunt_uv(0x7FFF), 163800);
    assert_int_equal(ina3221_decode_shunt_uv(0x8000), -163840); /* -full scale */
    assert_int_equal(ina3221_decode_shunt_uv(0xFFF8), -40);
    assert_int_equal(ina3221_decode_shunt_uv(0xFFFF), -40);
    assert_int_equal(ina3221_decode_shunt_uv(0xF9C0), -8000);   /* -200 LSB */
    assert_int_equal(ina3221_decode_shunt_uv(0x0C80), 16000);   /* 400 LSB */
    /* the same as the datasheet's (int16_t)raw >> 3 for every value */
    for (uint32_t raw = 0; raw <= 0xFFFF; raw++) {
        int32_t v = (int32_t)raw >= 0x8000 ? (int32_t)raw - 0x10000 : (int32_t)raw;
        int32_t floor_div8 = (v - ((v % 8 + 8) % 8)) / 8;
        assert_int_equal(ina3221_data_code((uint16_t)raw), floor_div8);
    }
}

static void test_decode_bus_and_sum(void **state)
{
    (void)state;
    assert_int_equal(ina3221_decode_bus_mv(0x2710), 10000); /* the PV upper limit: 10 V */
    assert_int_equal(ina3221_decode_bus_mv(0x2328), 9000);  /* the PV lower limit: 9 V */
    assert_int_equal(ina3221_decode_bus_mv(0x1388), 5000);
    assert_int_equal(ina3221_decode_bus_mv(0x7FF8), 32760); /* register full scale */
    assert_int_equal(ina3221_decode_bus_mv(0xFFF8), -8);
    assert_int_equal(ina3221_decode_bus_mv(0x8000), -32768);
    assert_int_equal(ina3221_decode_shunt_sum_uv(0x0002), 40);
    assert_int_equal(ina3221_decode_shunt_sum_uv(0x0001), 0); /* bit 0 unused */
    assert_int_equal(ina3221_decode_shunt_sum_uv(0x7FFE), 16383 * 40);
    assert_int_equal(ina3221_decode_shunt_sum_uv(0xFFFE), -40);
    assert_int_equal(ina3221_decode_shunt_sum_uv(0x8000), -16384 * 40);
}

static void test_encode_data(void **state)
{
    (void)state;
    for (int32_t code = INA3221_DATA_CODE_MIN; code <= INA3221_DATA_CODE_MAX; code++) {
        uint16_t raw = ina3221_data_raw(code);
        assert_int_equal(raw & 7u, 0);
        assert_int_equal(ina3221_data_code(raw), code);
    }
    assert_int_equal(ina3221_data_raw(5000), 0x7FF8); /* clamped */
    assert_int_equal(ina3221_data_raw(-5000), 0x8000);
    assert_int_equal(ina3221_data_raw(-1), 0xFFF8);
    for (int32_t code = INA3221_SUM_CODE_MIN; code <= INA3221_SUM_CODE_MAX; code += 7)
        assert_int_equal(ina3221_decode_shunt_sum_uv(ina3221_shunt_sum_raw(code)), code * 40);
    assert_int_equal(ina3221_shunt_sum_raw(20000), 0x7FFE);
    assert_int_equal(ina3221_shunt_sum_raw(-20000), 0x8000);
}

static void test_units(void **state)
{
    (void)state;
    /* one LSB behind 5 mOhm is 8 mA, behind 2 mOhm 20 mA (reference table) */
    assert_near(ina3221_current_ma(40, 5000), 8.0, 1e-12);
    assert_near(ina3221_current_ma(40, 2000), 20.0, 1e-12);
    assert_near(ina3221_current_ma(163800, 5000), 32760.0, 1e-9); /* full scale: 32.76 A */
    assert_near(ina3221_current_ma(-8000, 5000), -1600.0, 1e-9);
    assert_near(ina3221_current_ma(6400, 10000), 640.0, 1e-9);
    /* mV x mA = uW */
    assert_near(ina3221_power_mw(5000, 1000), 5000.0, 1e-9);
    assert_near(ina3221_power_mw(19000, 1280), 24320.0, 1e-9);
    assert_near(ina3221_power_mw(5000, -1600), -8000.0, 1e-9);
    /* the whole path for one register pair: 6.4 mV over 5 mOhm at 5 V = 6.4 W */
    double ma = ina3221_current_ma(ina3221_decode_shunt_uv(ina3221_data_raw(160)), 5000);
    assert_near(ina3221_power_mw(ina3221_decode_bus_mv(ina3221_data_raw(625)), ma), 6400.0,
                1e-9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_map),
        cmocka_unit_test(test_config_decode),
        cmocka_unit_test(test_config_encode_round_trip),
        cmocka_unit_test(test_config_for_request),
        cmocka_unit_test(test_config_to_sampling),
        cmocka_unit_test(test_tables_and_formatting),
        cmocka_unit_test(test_decode_shunt),
        cmocka_unit_test(test_decode_bus_and_sum),
        cmocka_unit_test(test_encode_data),
        cmocka_unit_test(test_units),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
