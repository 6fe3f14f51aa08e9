/*
 * ina3221.c - the INA3221 register codec (ina3221.h): the register map and
 * CONFIG tables of datasheet SBOS576, and the decoding and unit arithmetic
 * shared by the ina3221-i2c backend and the emulated chip.
 *
 * Sign handling is written out with masks and subtraction instead of casting
 * to int16_t and shifting, so it is exact C with no implementation-defined
 * conversions: the value is the same as `(int16_t)raw >> 3` on every compiler
 * jetprof meets.
 */
#include "ina3221.h"

#include <stdio.h>
#include <string.h>

/* Register map (datasheet, "Register Maps"). Limits keep bits 2..0 (1..0 for the
 * sum limit) reserved, so those are not writable. */
static const struct ina3221_register_info registers[] = {
    {INA3221_REG_CONFIG, "CONFIG", INA3221_CONFIG_RESET, 0xFFFFu},
    {0x01, "shunt voltage ch1", 0x0000u, 0x0000u},
    {0x02, "bus voltage ch1", 0x0000u, 0x0000u},
    {0x03, "shunt voltage ch2", 0x0000u, 0x0000u},
    {0x04, "bus voltage ch2", 0x0000u, 0x0000u},
    {0x05, "shunt voltage ch3", 0x0000u, 0x0000u},
    {0x06, "bus voltage ch3", 0x0000u, 0x0000u},
    {0x07, "critical-alert limit ch1", 0x7FF8u, 0xFFF8u},
    {0x08, "warning-alert limit ch1", 0x7FF8u, 0xFFF8u},
    {0x09, "critical-alert limit ch2", 0x7FF8u, 0xFFF8u},
    {0x0A, "warning-alert limit ch2", 0x7FF8u, 0xFFF8u},
    {0x0B, "critical-alert limit ch3", 0x7FF8u, 0xFFF8u},
    {0x0C, "warning-alert limit ch3", 0x7FF8u, 0xFFF8u},
    {INA3221_REG_SHUNT_SUM, "shunt-voltage sum", 0x0000u, 0x0000u},
    {INA3221_REG_SHUNT_SUM_LIMIT, "shunt-voltage sum limit", 0x7FFEu, 0xFFFEu},
    /* Flags (bits 9..0) are set by the chip; CEN, WEN and the summation-control
     * bits (14..10) are the writable ones. */
    {INA3221_REG_MASK_ENABLE, "mask/enable", 0x0000u, 0x7C00u},
    {INA3221_REG_PV_UPPER, "power-valid upper limit", 0x2710u, 0xFFF8u},
    {INA3221_REG_PV_LOWER, "power-valid lower limit", 0x2328u, 0xFFF8u},
    {INA3221_REG_MANUFACTURER_ID, "manufacturer ID", INA3221_MANUFACTURER_ID, 0x0000u},
    {INA3221_REG_DIE_ID, "die ID", INA3221_DIE_ID, 0x0000u},
};
#define REGISTER_COUNT (sizeof registers / sizeof registers[0])

/* CONFIG bits 11..9 */
const unsigned ina3221_averaging_samples[INA3221_TABLE_SIZE] = {1,   4,   16,  64,
                                                                128, 256, 512, 1024};
/* CONFIG bits 8..6 (VBUSCT) and 5..3 (VSHCT) */
const unsigned ina3221_conv_time_us[INA3221_TABLE_SIZE] = {140,  204,  332,  588,
                                                           1100, 2116, 4156, 8244};

size_t ina3221_register_count(void) { return REGISTER_COUNT; }

const struct ina3221_register_info *ina3221_register_at(size_t i)
{
    return i < REGISTER_COUNT ? &registers[i] : NULL;
}

const struct ina3221_register_info *ina3221_register_find(uint8_t addr)
{
    for (size_t i = 0; i < REGISTER_COUNT; i++) {
        if (registers[i].addr == addr)
            return &registers[i];
    }
    return NULL;
}

const char *ina3221_register_name(uint8_t addr)
{
    const struct ina3221_register_info *r = ina3221_register_find(addr);
    return r ? r->name : "unknown register";
}

static int table_index(const unsigned *table, unsigned value)
{
    for (int i = 0; i < INA3221_TABLE_SIZE; i++) {
        if (table[i] == value)
            return i;
    }
    return -1;
}

int ina3221_averaging_index(unsigned samples)
{
    return table_index(ina3221_averaging_samples, samples);
}

int ina3221_conv_time_index(unsigned conv_us)
{
    return table_index(ina3221_conv_time_us, conv_us);
}

static unsigned table_nearest_index(const unsigned *table, unsigned value)
{
    unsigned best = 0;
    for (unsigned i = 1; i < INA3221_TABLE_SIZE; i++) {
        unsigned d = value > table[i] ? value - table[i] : table[i] - value;
        unsigned bd = value > table[best] ? value - table[best] : table[best] - value;
        if (d < bd)
            best = i;
    }
    return best;
}

unsigned ina3221_averaging_nearest_index(unsigned samples)
{
    return table_nearest_index(ina3221_averaging_samples, samples);
}

unsigned ina3221_conv_time_nearest_index(unsigned conv_us)
{
    return table_nearest_index(ina3221_conv_time_us, conv_us);
}

static void format_table(const unsigned *table, char *buf, size_t buflen)
{
    size_t used = 0;
    if (buflen == 0)
        return;
    buf[0] = '\0';
    for (int i = 0; i < INA3221_TABLE_SIZE && used < buflen; i++) {
        int n = snprintf(buf + used, buflen - used, "%s%u", i ? ", " : "", table[i]);
        if (n < 0)
            return;
        used += (size_t)n;
    }
}

void ina3221_format_averaging_values(char *buf, size_t buflen)
{
    format_table(ina3221_averaging_samples, buf, buflen);
}

void ina3221_format_conv_times(char *buf, size_t buflen)
{
    format_table(ina3221_conv_time_us, buf, buflen);
}

static unsigned field(uint16_t raw, unsigned shift)
{
    return ((unsigned)raw >> shift) & INA3221_CONFIG_FIELD_MASK;
}

void ina3221_config_decode(uint16_t raw, struct ina3221_config *out)
{
    for (unsigned c = 0; c < INA3221_CHANNELS; c++)
        out->channel_enabled[c] = (raw & INA3221_CONFIG_CH_EN(c)) != 0;
    out->averaging = ina3221_averaging_samples[field(raw, INA3221_CONFIG_AVG_SHIFT)];
    out->bus_conv_us = ina3221_conv_time_us[field(raw, INA3221_CONFIG_VBUSCT_SHIFT)];
    out->shunt_conv_us = ina3221_conv_time_us[field(raw, INA3221_CONFIG_VSHCT_SHIFT)];
    out->mode = raw & INA3221_CONFIG_MODE_MASK;
}

int ina3221_config_encode(const struct ina3221_config *c, uint16_t *raw, char *err,
                          size_t errlen)
{
    char allowed[64];
    int avg = ina3221_averaging_index(c->averaging);
    if (avg < 0) {
        ina3221_format_averaging_values(allowed, sizeof allowed);
        snprintf(err, errlen, "averaging %u is not an INA3221 setting (allowed: %s samples)",
                 c->averaging, allowed);
        return -1;
    }
    int vbus = ina3221_conv_time_index(c->bus_conv_us);
    if (vbus < 0) {
        ina3221_format_conv_times(allowed, sizeof allowed);
        snprintf(err, errlen,
                 "bus conversion time %u us is not an INA3221 setting (allowed: %s us)",
                 c->bus_conv_us, allowed);
        return -1;
    }
    int vsh = ina3221_conv_time_index(c->shunt_conv_us);
    if (vsh < 0) {
        ina3221_format_conv_times(allowed, sizeof allowed);
        snprintf(err, errlen,
                 "shunt conversion time %u us is not an INA3221 setting (allowed: %s us)",
                 c->shunt_conv_us, allowed);
        return -1;
    }
    if (c->mode > INA3221_CONFIG_MODE_MASK) {
        snprintf(err, errlen, "operating mode %u is not an INA3221 setting (0..7)", c->mode);
        return -1;
    }
    unsigned v = 0;
    for (unsigned ch = 0; ch < INA3221_CHANNELS; ch++) {
        if (c->channel_enabled[ch])
            v |= INA3221_CONFIG_CH_EN(ch);
    }
    v |= (unsigned)avg << INA3221_CONFIG_AVG_SHIFT;
    v |= (unsigned)vbus << INA3221_CONFIG_VBUSCT_SHIFT;
    v |= (unsigned)vsh << INA3221_CONFIG_VSHCT_SHIFT;
    v |= c->mode;
    *raw = (uint16_t)v;
    return 0;
}

unsigned ina3221_channel_mask(uint16_t config)
{
    unsigned mask = 0;
    for (unsigned c = 0; c < INA3221_CHANNELS; c++) {
        if (config & INA3221_CONFIG_CH_EN(c))
            mask |= 1u << c;
    }
    return mask;
}

unsigned ina3221_channel_count(uint16_t config)
{
    unsigned mask = ina3221_channel_mask(config), n = 0;
    for (; mask; mask >>= 1)
        n += mask & 1u;
    return n;
}

unsigned ina3221_cycle_us(uint16_t config)
{
    struct ina3221_config c;
    ina3221_config_decode(config, &c);
    unsigned per_channel = 0;
    if (c.mode & INA3221_MODE_SHUNT)
        per_channel += c.shunt_conv_us;
    if (c.mode & INA3221_MODE_BUS)
        per_channel += c.bus_conv_us;
    return ina3221_channel_count(config) * per_channel;
}

int ina3221_config_for_request(uint16_t found, const struct sensor_sampling *req,
                               unsigned channel_mask, uint16_t *out, char *err,
                               size_t errlen)
{
    if (channel_mask == 0 || channel_mask > 0x7u) {
        snprintf(err, errlen, "channel mask 0x%x selects no INA3221 channel (bits 0..2)",
                 channel_mask);
        return -1;
    }
    struct ina3221_config c;
    ina3221_config_decode(found, &c);
    for (unsigned ch = 0; ch < INA3221_CHANNELS; ch++)
        c.channel_enabled[ch] = (channel_mask >> ch) & 1u;
    c.mode = INA3221_MODE_CONTINUOUS_BOTH;
    if (req != NULL) {
        if (req->averaging)
            c.averaging = req->averaging;
        if (req->bus_conv_us)
            c.bus_conv_us = req->bus_conv_us;
        if (req->shunt_conv_us)
            c.shunt_conv_us = req->shunt_conv_us;
    }
    return ina3221_config_encode(&c, out, err, errlen);
}

void ina3221_config_to_sampling(uint16_t config, struct sensor_sampling *out)
{
    struct ina3221_config c;
    ina3221_config_decode(config, &c);
    out->averaging = c.averaging;
    out->bus_conv_us = c.bus_conv_us;
    out->shunt_conv_us = c.shunt_conv_us;
    out->period_us = ina3221_cycle_us(config);
}

int32_t ina3221_data_code(uint16_t raw)
{
    int32_t v = (int32_t)(raw & 0xFFF8u);
    if (v & 0x8000)
        v -= 0x10000;
    return v / 8; /* exact: v is a multiple of 8 */
}

int32_t ina3221_decode_shunt_uv(uint16_t raw)
{
    return ina3221_data_code(raw) * INA3221_SHUNT_LSB_UV;
}

int32_t ina3221_decode_bus_mv(uint16_t raw)
{
    return ina3221_data_code(raw) * INA3221_BUS_LSB_MV;
}

int32_t ina3221_decode_shunt_sum_uv(uint16_t raw)
{
    int32_t v = (int32_t)(raw & 0xFFFEu);
    if (v & 0x8000)
        v -= 0x10000;
    return v / 2 * INA3221_SHUNT_LSB_UV;
}

uint16_t ina3221_data_raw(int32_t code)
{
    if (code < INA3221_DATA_CODE_MIN)
        code = INA3221_DATA_CODE_MIN;
    if (code > INA3221_DATA_CODE_MAX)
        code = INA3221_DATA_CODE_MAX;
    return (uint16_t)(((uint32_t)code << 3) & 0xFFFFu);
}

uint16_t ina3221_shunt_sum_raw(int32_t code)
{
    if (code < INA3221_SUM_CODE_MIN)
        code = INA3221_SUM_CODE_MIN;
    if (code > INA3221_SUM_CODE_MAX)
        code = INA3221_SUM_CODE_MAX;
    return (uint16_t)(((uint32_t)code << 1) & 0xFFFFu);
}

double ina3221_current_ma(double shunt_uv, unsigned shunt_uohm)
{
    return shunt_uv / (double)shunt_uohm * 1000.0;
}

double ina3221_power_mw(double bus_mv, double current_ma)
{
    return bus_mv * current_ma / 1000.0;
}
