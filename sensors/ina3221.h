/*
 * ina3221.h - the TI INA3221 register codec (datasheet SBOS576): register map,
 * CONFIG fields and their tables, decoding of the shunt- and bus-voltage
 * registers, and the arithmetic from volts to milliamperes and milliwatts.
 *
 * Pure computation, no I/O. Both sides of the chip use it: the ina3221-i2c
 * backend (sensor_ina3221_i2c.c) to program and read a real or emulated chip,
 * and the emulated chip (ina3221_emu.c) to hold and update its registers, so
 * the two cannot disagree about a bit. Values here are register values as the
 * chip holds them (most significant byte first); the SMBus byte swap belongs to
 * the bus (i2c_bus.h).
 *
 * Timing facts the rest of jetprof relies on:
 *   - one cycle = every enabled channel converts its shunt voltage then its bus
 *     voltage (in continuous shunt-and-bus mode): cycle = channels x (VSHCT + VBUSCT);
 *   - averaging is a running filter applied at every conversion (datasheet,
 *     "Averaging Function": the output register moves by 1/N of the difference),
 *     so the output registers and CVRF are updated once per cycle whatever AVG
 *     is; averaging adds lag (a time constant of about N cycles), not time
 *     between fresh values. The fresh-sample period is therefore the cycle time,
 *     and that is what ina3221_config_to_sampling() reports as period_us. (The
 *     Linux hwmon driver once multiplied its CVRF wait by the sample count and
 *     dropped that for the same reason.)
 */
#ifndef JETPROF_INA3221_H
#define JETPROF_INA3221_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sensor.h"

#define INA3221_CHANNELS 3

/* Register addresses (register pointer values). Channel c is 0-based. */
enum ina3221_reg {
    INA3221_REG_CONFIG = 0x00,
    INA3221_REG_SHUNT1 = 0x01, /* shunt voltage of channel c: 0x01 + 2c */
    INA3221_REG_BUS1 = 0x02,   /* bus voltage of channel c: 0x02 + 2c */
    INA3221_REG_CRIT1 = 0x07,  /* critical-alert limit of channel c: 0x07 + 2c */
    INA3221_REG_WARN1 = 0x08,  /* warning-alert limit of channel c: 0x08 + 2c */
    INA3221_REG_SHUNT_SUM = 0x0D,
    INA3221_REG_SHUNT_SUM_LIMIT = 0x0E,
    INA3221_REG_MASK_ENABLE = 0x0F,
    INA3221_REG_PV_UPPER = 0x10,
    INA3221_REG_PV_LOWER = 0x11,
    INA3221_REG_MANUFACTURER_ID = 0xFE,
    INA3221_REG_DIE_ID = 0xFF,
};

static inline uint8_t ina3221_reg_shunt(unsigned channel)
{
    return (uint8_t)(INA3221_REG_SHUNT1 + 2u * channel);
}

static inline uint8_t ina3221_reg_bus(unsigned channel)
{
    return (uint8_t)(INA3221_REG_BUS1 + 2u * channel);
}

#define INA3221_MANUFACTURER_ID 0x5449u /* "TI" */
#define INA3221_DIE_ID 0x3220u
#define INA3221_CONFIG_RESET 0x7127u    /* 3 channels, AVG 1, 1.1 ms + 1.1 ms, continuous */
#define INA3221_ADDR_MIN 0x40u
#define INA3221_ADDR_MAX 0x43u

/* CONFIG bits */
#define INA3221_CONFIG_RST 0x8000u                       /* self-clearing reset */
#define INA3221_CONFIG_CH_EN(c) ((uint16_t)(0x4000u >> (c))) /* c = 0..2 */
#define INA3221_CONFIG_CH_EN_MASK 0x7000u
#define INA3221_CONFIG_AVG_SHIFT 9
#define INA3221_CONFIG_VBUSCT_SHIFT 6
#define INA3221_CONFIG_VSHCT_SHIFT 3
#define INA3221_CONFIG_FIELD_MASK 0x7u
#define INA3221_CONFIG_MODE_MASK 0x7u
/* MODE bits: 000 and 100 power-down; bit 0 shunt, bit 1 bus, bit 2 continuous. */
#define INA3221_MODE_SHUNT 0x1u
#define INA3221_MODE_BUS 0x2u
#define INA3221_MODE_CONTINUOUS 0x4u
#define INA3221_MODE_CONTINUOUS_BOTH 0x7u

/* Mask/enable bits */
#define INA3221_MASK_CVRF 0x0001u /* conversion ready; cleared by reading this register
                                   * or writing CONFIG */
#define INA3221_MASK_TCF 0x0002u
#define INA3221_MASK_PVF 0x0004u
#define INA3221_MASK_CEN 0x0400u
#define INA3221_MASK_WEN 0x0800u
#define INA3221_MASK_SCC(c) ((uint16_t)(0x4000u >> (c))) /* summation control, c = 0..2 */

/* Data scales */
#define INA3221_SHUNT_LSB_UV 40
#define INA3221_BUS_LSB_MV 8
#define INA3221_DATA_CODE_MIN (-4096) /* 13-bit two's complement in bits 15..3 */
#define INA3221_DATA_CODE_MAX 4095
#define INA3221_SUM_CODE_MIN (-16384) /* 15-bit two's complement in bits 15..1 */
#define INA3221_SUM_CODE_MAX 16383

/* One row of the register map. */
struct ina3221_register_info {
    uint8_t addr;
    const char *name;       /* "shunt voltage ch1" */
    uint16_t reset;         /* power-on value */
    uint16_t writable_mask; /* bits a write changes; 0 = read-only */
};

size_t ina3221_register_count(void);
const struct ina3221_register_info *ina3221_register_at(size_t i);
/* The register at addr, or NULL when the chip has none there. */
const struct ina3221_register_info *ina3221_register_find(uint8_t addr);
/* "CONFIG", "mask/enable", ...; "register 0x42" style text for unknown ones is
 * the caller's business: returns "unknown register" then. */
const char *ina3221_register_name(uint8_t addr);

/* The datasheet's tables, indexed by the 3-bit field value. */
#define INA3221_TABLE_SIZE 8
extern const unsigned ina3221_averaging_samples[INA3221_TABLE_SIZE]; /* 1 .. 1024 */
extern const unsigned ina3221_conv_time_us[INA3221_TABLE_SIZE];      /* 140 .. 8244 */

/* Field value for a sample count or conversion time, or -1 when the datasheet
 * does not list it. */
int ina3221_averaging_index(unsigned samples);
int ina3221_conv_time_index(unsigned conv_us);
/* Field value of the listed sample count or conversion time nearest to any
 * value (a tie goes to the smaller one), for callers that snap a request to
 * the table instead of refusing it (the ina3221-hwmon backend). */
unsigned ina3221_averaging_nearest_index(unsigned samples);
unsigned ina3221_conv_time_nearest_index(unsigned conv_us);
/* "1, 4, 16, 64, 128, 256, 512, 1024" and "140, 204, ..., 8244" (us), for messages. */
void ina3221_format_averaging_values(char *buf, size_t buflen);
void ina3221_format_conv_times(char *buf, size_t buflen);

/* CONFIG as fields, values in natural units. */
struct ina3221_config {
    bool channel_enabled[INA3221_CHANNELS];
    unsigned averaging;     /* samples */
    unsigned bus_conv_us;
    unsigned shunt_conv_us;
    unsigned mode;          /* MODE bits 2..0 */
};

/* Every CONFIG value decodes (the RST bit is ignored). */
void ina3221_config_decode(uint16_t raw, struct ina3221_config *out);
/* -1 with err naming the field when a value is not in the datasheet's tables. */
int ina3221_config_encode(const struct ina3221_config *c, uint16_t *raw, char *err,
                          size_t errlen);

/* Bit c set for every enabled channel c. */
unsigned ina3221_channel_mask(uint16_t config);
unsigned ina3221_channel_count(uint16_t config);
/* Time in us of one cycle of the conversions CONFIG selects (every enabled
 * channel, shunt and/or bus as the mode says); 0 in power-down or with no
 * channel enabled. */
unsigned ina3221_cycle_us(uint16_t config);

/*
 * The CONFIG for a sampling request: channels from channel_mask (bit c =
 * channel c, at least one), continuous shunt-and-bus mode, and averaging and
 * conversion times from req, where a zero field keeps the value in `found`.
 * req->period_us is not a chip setting (the period follows from the others)
 * and is ignored. -1 with err listing the allowed values when req asks for one
 * the datasheet does not list. req NULL = keep everything as found.
 */
int ina3221_config_for_request(uint16_t found, const struct sensor_sampling *req,
                               unsigned channel_mask, uint16_t *out, char *err,
                               size_t errlen);
/* Sampling a CONFIG value gives; period_us = ina3221_cycle_us (see above). */
void ina3221_config_to_sampling(uint16_t config, struct sensor_sampling *out);

/* Data registers: two's complement in bits 15..3 (bits 2..0 ignored). */
int32_t ina3221_data_code(uint16_t raw);
int32_t ina3221_decode_shunt_uv(uint16_t raw); /* 40 uV LSB: -163840 .. 163800 */
int32_t ina3221_decode_bus_mv(uint16_t raw);   /* 8 mV LSB: -32768 .. 32760 */
/* Shunt-voltage sum register: two's complement in bits 15..1, 40 uV LSB. */
int32_t ina3221_decode_shunt_sum_uv(uint16_t raw);
/* Register value for a code, clamped to the data range. */
uint16_t ina3221_data_raw(int32_t code);
uint16_t ina3221_shunt_sum_raw(int32_t code);

/* I = V / R: uV / uOhm = A, so mA = shunt_uv / shunt_uohm * 1000. shunt_uohm > 0. */
double ina3221_current_ma(double shunt_uv, unsigned shunt_uohm);
/* P = V * I: mV * mA = uW, so mW = bus_mv * current_ma / 1000. */
double ina3221_power_mw(double bus_mv, double current_ma);

#endif
