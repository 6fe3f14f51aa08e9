/*
 * sensor_ina3221_i2c.c - the `ina3221-i2c` backend: the Jetson's INA3221 power
 * monitors programmed and read directly over I2C (<dev_root>/i2c-N, or the
 * emulated chip of ina3221_emu.h when options.i2c_emulated is set; its values
 * are then simulated and the sensor says so).
 *
 * Which chips, channels, rails and shunts: sensor options i2c_bus, i2c_addr,
 * shunt_uohm and rail_names where set, the board table (boards.h, found from
 * the device-tree model under sysfs_root) for the rest. Without i2c_addr every
 * chip of the board is used (AGX Orin, AGX Xavier and TX2 have two) and they
 * form one sensor; rail_names and shunt_uohm then describe the board's only
 * chip, so with two chips they need i2c_addr to say which. A channel whose
 * rail is missing or "NC" is disabled in CONFIG, so it costs no conversion
 * time; a chip with no connected channel is not opened at all. i2c_bus -1
 * means "from the board table" (0 is a real bus: the TX2's).
 *
 * Open: every chip's manufacturer and die IDs are checked (0x5449, 0x3220) and
 * its CONFIG read before anything is written to any chip; the request is
 * validated against the datasheet's tables before any write too. Then CONFIG
 * = connected channels, averaging and conversion times from the request (zero
 * = as found), continuous shunt-and-bus mode; it is read back and s->got comes
 * from what the chip holds. Close writes back the CONFIG found at open; a chip
 * that has vanished only costs a logged warning. The configure op (PUT
 * /v1/sensor/sampling through sampler_reconfigure) does the same while open.
 *
 * Freshness: read() returns one sample per conversion cycle and never the same
 * conversion twice. It waits for CVRF (mask/enable bit 0, set when every
 * enabled conversion and the averaging are done, cleared by reading it), then
 * reads the shunt and bus registers of the connected channels. The period of
 * fresh values is the cycle time, channels x (VSHCT + VBUSCT), whatever the
 * averaging: the INA3221's averaging is a running filter updated at every
 * conversion (ina3221.h), so it adds lag, not time between values. That
 * period is s->got.period_us.
 *
 * Polling without burning a core: a cycle's end is predicted from the last one
 * (anchor + cycle) and the thread sleeps until a little after it; while CVRF
 * is not yet set it polls every cycle/16 (at least 10 us), sleeping in
 * between. The predicted period runs 1/32 short, so every few cycles a poll
 * comes early, finds CVRF clear and re-measures the phase: timer slack and
 * wake-up latency never accumulate into a missed cycle, and a chip whose
 * oscillator runs up to 3 % fast is still followed. The wait is bounded: a
 * poll issued more than 4 cycles after the wait began that still finds CVRF
 * clear is a read error, not a hang (the chip must have finished a cycle by
 * then unless it stopped converting, or someone else - a forced-out kernel
 * driver - read the flag first). A sample's t_ns is the estimated end of its
 * cycle, and with two chips the later of the two.
 *
 * Units: shunt register x 40 uV, bus register x 8 mV (two's complement, bits
 * 15..3); mA = uV / uOhm x 1000; mW = mV x mA / 1000.
 */
#include "sensor.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boards.h"
#include "common/clock.h"
#include "common/log.h"
#include "i2c_bus.h"
#include "ina3221.h"
#include "ina3221_emu.h"

#define NS_PER_US 1000LL
#define POLL_DIVISOR 16       /* poll interval = cycle / 16 ... */
#define POLL_MIN_NS 10000LL   /* ... but at least 10 us */
#define GUARD_DIVISOR 32      /* first poll a cycle/32 after the predicted end */
#define LEAD_DIVISOR 32       /* the predicted period runs cycle/32 short */
#define TIMEOUT_CYCLES 4      /* CVRF still clear this many cycles into a wait: error */

/* Rails that are a board's input, for boards the table does not know. */
static const char *const generic_input_rails[] = {"VDD_IN", "POM_5V_IN"};

struct chip_plan {
    int bus;
    unsigned addr;
    const char *rail[INA3221_CHANNELS];   /* NULL = not connected */
    unsigned shunt_uohm[INA3221_CHANNELS];
};

struct plan {
    const struct board *board;
    bool all_board_chips; /* every chip of the board is used */
    unsigned chip_count;
    struct chip_plan chip[BOARD_MAX_CHIPS];
};

struct chip {
    struct i2c_dev *dev;
    unsigned channel_mask;
    unsigned shunt_uohm[INA3221_CHANNELS];
    int rail[INA3221_CHANNELS]; /* index into s->rails, -1 = not connected */
    uint16_t found_config;      /* written back at close */
    bool written;               /* CONFIG was changed by us */
    uint16_t config;            /* as read back */
    int64_t cycle_ns;
    int64_t poll_ns, guard_ns, lead_ns;
    int64_t anchor_ns;          /* estimated end of the last cycle consumed (or the
                                 * CONFIG write) */
};

struct ina_i2c {
    bool emulated;
    unsigned chip_count;
    struct chip chip[BOARD_MAX_CHIPS];
};

static bool rail_connected(const char *rail)
{
    return rail != NULL && rail[0] != '\0' && strcmp(rail, "NC") != 0;
}

/* ---- which chips, channels, rails and shunts ---- */

static const struct board_chip *board_chip_at(const struct board *b, int bus, unsigned addr)
{
    if (b == NULL)
        return NULL;
    for (unsigned i = 0; i < b->chip_count && i < BOARD_MAX_CHIPS; i++) {
        if (b->chips[i].addr == addr && (bus < 0 || b->chips[i].i2c_bus == bus))
            return &b->chips[i];
    }
    return NULL;
}

static bool options_describe_channels(const struct sensor_options *opt)
{
    for (unsigned c = 0; c < INA3221_CHANNELS; c++) {
        if (opt->rail_names[c] != NULL || opt->shunt_uohm[c] != 0)
            return true;
    }
    return false;
}

/* Channels of one chip: options first, the board's chip (may be NULL) for the rest. */
static void plan_channels(struct chip_plan *cp, const struct board_chip *bc,
                          const struct sensor_options *opt, bool use_options)
{
    for (unsigned c = 0; c < INA3221_CHANNELS; c++) {
        const char *rail = use_options ? opt->rail_names[c] : NULL;
        unsigned shunt = use_options ? opt->shunt_uohm[c] : 0;
        if (rail == NULL && bc != NULL)
            rail = bc->channels[c].rail;
        if (shunt == 0 && bc != NULL)
            shunt = bc->channels[c].shunt_uohm;
        cp->rail[c] = rail_connected(rail) ? rail : NULL;
        cp->shunt_uohm[c] = shunt;
    }
}

static int make_plan(const struct sensor_options *opt, struct plan *p, char *err,
                     size_t errlen)
{
    memset(p, 0, sizeof *p);
    const char *sysfs_root = opt->sysfs_root && opt->sysfs_root[0] ? opt->sysfs_root : "/sys";
    char model[160] = "";
    bool have_model = boards_read_model(sysfs_root, model, sizeof model) == 0;
    p->board = have_model ? boards_match(model) : NULL;
    char board_why[240];
    if (!have_model)
        snprintf(board_why, sizeof board_why,
                 "no device-tree model at %.100s/firmware/devicetree/base/model", sysfs_root);
    else
        snprintf(board_why, sizeof board_why, "board \"%.100s\" is not in the board table",
                 model);

    if (opt->i2c_addr != 0) {
        if (opt->i2c_addr < INA3221_ADDR_MIN || opt->i2c_addr > INA3221_ADDR_MAX) {
            snprintf(err, errlen,
                     "sensor.i2c_addr = 0x%x is not an INA3221 address (0x40..0x43)",
                     opt->i2c_addr);
            return -1;
        }
        const struct board_chip *bc = board_chip_at(p->board, opt->i2c_bus, opt->i2c_addr);
        struct chip_plan *cp = &p->chip[0];
        cp->addr = opt->i2c_addr;
        if (opt->i2c_bus >= 0) {
            cp->bus = opt->i2c_bus;
        } else if (bc != NULL) {
            cp->bus = bc->i2c_bus;
        } else {
            snprintf(err, errlen,
                     "sensor.i2c_bus is not set and the board table has no INA3221 at 0x%02x "
                     "(%s)",
                     opt->i2c_addr, p->board ? p->board->name : board_why);
            return -1;
        }
        plan_channels(cp, bc, opt, true);
        p->chip_count = 1;
        p->all_board_chips = p->board != NULL && p->board->chip_count == 1 && bc != NULL;
    } else {
        if (p->board == NULL) {
            snprintf(err, errlen,
                     "%s; set sensor.i2c_bus, i2c_addr, shunt_uohm and rails to describe "
                     "the INA3221",
                     board_why);
            return -1;
        }
        unsigned n = p->board->chip_count;
        if (n == 0 || n > BOARD_MAX_CHIPS) {
            snprintf(err, errlen, "the board table lists %u INA3221 chips for %s", n,
                     p->board->name);
            return -1;
        }
        bool use_options = options_describe_channels(opt);
        if (use_options && n > 1) {
            snprintf(err, errlen,
                     "sensor.rails and sensor.shunt_uohm describe one chip, but %s has %u "
                     "INA3221 chips: set sensor.i2c_addr to pick one",
                     p->board->name, n);
            return -1;
        }
        for (unsigned i = 0; i < n; i++) {
            const struct board_chip *bc = &p->board->chips[i];
            p->chip[i].bus = opt->i2c_bus >= 0 ? opt->i2c_bus : bc->i2c_bus;
            p->chip[i].addr = bc->addr;
            plan_channels(&p->chip[i], bc, opt, use_options);
        }
        p->chip_count = n;
        p->all_board_chips = true;
    }

    /* A chip with nothing connected is left alone: never opened, never written. */
    unsigned kept = 0;
    for (unsigned i = 0; i < p->chip_count; i++) {
        bool any = false;
        for (unsigned c = 0; c < INA3221_CHANNELS; c++)
            any = any || p->chip[i].rail[c] != NULL;
        if (any)
            p->chip[kept++] = p->chip[i];
    }
    p->chip_count = kept;

    unsigned rails = 0;
    for (unsigned i = 0; i < p->chip_count; i++) {
        struct chip_plan *cp = &p->chip[i];
        if (cp->addr < INA3221_ADDR_MIN || cp->addr > INA3221_ADDR_MAX) {
            snprintf(err, errlen, "0x%02x is not an INA3221 address (0x40..0x43)", cp->addr);
            return -1;
        }
        for (unsigned c = 0; c < INA3221_CHANNELS; c++) {
            if (cp->rail[c] == NULL)
                continue;
            if (strlen(cp->rail[c]) >= SENSOR_RAIL_NAME_MAX) {
                snprintf(err, errlen, "rail name \"%.40s...\" is longer than %d characters",
                         cp->rail[c], SENSOR_RAIL_NAME_MAX - 1);
                return -1;
            }
            if (cp->shunt_uohm[c] == 0) {
                snprintf(err, errlen,
                         "no shunt resistance for channel %u (%s) of the INA3221 at 0x%02x on "
                         "bus %d: set sensor.shunt_uohm",
                         c + 1, cp->rail[c], cp->addr, cp->bus);
                return -1;
            }
            rails++;
        }
    }
    if (rails == 0) {
        snprintf(err, errlen,
                 "no INA3221 channel is connected (every rail is missing or \"NC\"): set "
                 "sensor.rails");
        return -1;
    }
    return 0;
}

/* ---- chip access ---- */

static int read_reg(struct chip *ch, uint8_t reg, uint16_t *value, char *err, size_t errlen)
{
    int rc = i2c_dev_read_be16(ch->dev, reg, value);
    if (rc != 0)
        snprintf(err, errlen, "reading %s of the INA3221 at %s: %s",
                 ina3221_register_name(reg), ch->dev->where, strerror(-rc));
    return rc ? -1 : 0;
}

static int write_reg(struct chip *ch, uint8_t reg, uint16_t value, char *err, size_t errlen)
{
    int rc = i2c_dev_write_be16(ch->dev, reg, value);
    if (rc != 0)
        snprintf(err, errlen, "writing 0x%04x to %s of the INA3221 at %s: %s", value,
                 ina3221_register_name(reg), ch->dev->where, strerror(-rc));
    return rc ? -1 : 0;
}

static int verify_ids(struct chip *ch, char *err, size_t errlen)
{
    uint16_t manufacturer, die;
    if (read_reg(ch, INA3221_REG_MANUFACTURER_ID, &manufacturer, err, errlen) != 0 ||
        read_reg(ch, INA3221_REG_DIE_ID, &die, err, errlen) != 0)
        return -1;
    if (manufacturer != INA3221_MANUFACTURER_ID || die != INA3221_DIE_ID) {
        snprintf(err, errlen,
                 "not an INA3221 at %s: manufacturer 0x%04x, die 0x%04x (an INA3221 "
                 "answers 0x%04x, 0x%04x)",
                 ch->dev->where, manufacturer, die, INA3221_MANUFACTURER_ID, INA3221_DIE_ID);
        return -1;
    }
    return 0;
}

/* Timing derived from the CONFIG the chip holds. */
static void set_timing(struct chip *ch, uint16_t config, int64_t written_ns)
{
    ch->config = config;
    ch->cycle_ns = (int64_t)ina3221_cycle_us(config) * NS_PER_US;
    ch->poll_ns = ch->cycle_ns / POLL_DIVISOR;
    if (ch->poll_ns < POLL_MIN_NS)
        ch->poll_ns = POLL_MIN_NS;
    ch->guard_ns = ch->cycle_ns / GUARD_DIVISOR;
    ch->lead_ns = ch->cycle_ns / LEAD_DIVISOR;
    ch->anchor_ns = written_ns; /* a CONFIG write restarts the cycle */
}

/*
 * Writes CONFIG and reads it back. The chip must have taken the channels and
 * the continuous mode, or sampling is impossible; averaging and conversion
 * times it did not take are reported through s->got, with a warning.
 */
static int program(struct chip *ch, uint16_t config, char *err, size_t errlen)
{
    int64_t t = clock_mono_ns();
    if (write_reg(ch, INA3221_REG_CONFIG, config, err, errlen) != 0)
        return -1;
    ch->written = true;
    uint16_t back;
    if (read_reg(ch, INA3221_REG_CONFIG, &back, err, errlen) != 0)
        return -1;
    const uint16_t must = INA3221_CONFIG_CH_EN_MASK | INA3221_CONFIG_MODE_MASK;
    if ((back & must) != (config & must) || ina3221_cycle_us(back) == 0) {
        snprintf(err, errlen,
                 "the INA3221 at %s did not take CONFIG 0x%04x: it reads back 0x%04x "
                 "(channels or mode differ)",
                 ch->dev->where, config, back);
        return -1;
    }
    if (back != config)
        log_warn("sensor",
                 "the INA3221 at %s reads back CONFIG 0x%04x after 0x%04x was written; "
                 "reporting the settings it holds",
                 ch->dev->where, back, config);
    set_timing(ch, back, t);
    return 0;
}

/* Puts back the CONFIG found at open; problems are logged, never fatal. */
static void restore(struct chip *ch)
{
    if (!ch->written || ch->dev == NULL)
        return;
    char err[200];
    uint16_t original = ch->found_config & (uint16_t)~INA3221_CONFIG_RST, back;
    if (write_reg(ch, INA3221_REG_CONFIG, original, err, sizeof err) != 0 ||
        read_reg(ch, INA3221_REG_CONFIG, &back, err, sizeof err) != 0) {
        log_warn("sensor", "could not restore CONFIG 0x%04x: %s", original, err);
        return;
    }
    if (back != original) {
        log_warn("sensor",
                 "restoring CONFIG 0x%04x of the INA3221 at %s: it reads back 0x%04x",
                 original, ch->dev->where, back);
        return;
    }
    ch->written = false;
    log_info("sensor", "restored CONFIG 0x%04x of the INA3221 at %s", original,
             ch->dev->where);
}

static void free_impl(struct ina_i2c *m)
{
    for (unsigned i = 0; i < m->chip_count; i++) {
        restore(&m->chip[i]);
        i2c_dev_close(m->chip[i].dev);
        m->chip[i].dev = NULL;
    }
    free(m);
}

/* s->got from the chips: their common settings, the slowest cycle as period. */
static void report_got(struct sensor *s, const struct ina_i2c *m)
{
    ina3221_config_to_sampling(m->chip[0].config, &s->got);
    for (unsigned i = 1; i < m->chip_count; i++) {
        unsigned cycle = ina3221_cycle_us(m->chip[i].config);
        if (cycle > s->got.period_us)
            s->got.period_us = cycle;
    }
}

static void log_period_note(const struct sensor_sampling *asked, const struct sensor_sampling *got)
{
    if (asked->period_us != 0 && asked->period_us != got->period_us)
        log_info("sensor",
                 "ina3221-i2c: period_us %u is not a chip setting; the conversion times give "
                 "a fresh sample every %u us",
                 asked->period_us, got->period_us);
}

/* ---- backend ops ---- */

static void describe(struct sensor *s, const struct ina_i2c *m, const struct plan *p)
{
    char chips[96] = "";
    size_t used = 0;
    for (unsigned i = 0; i < m->chip_count && used < sizeof chips; i++) {
        const struct i2c_dev *d = m->chip[i].dev;
        int n;
        if (i == 0)
            n = snprintf(chips, sizeof chips, "%s", d->where);
        else if (d->bus == m->chip[0].dev->bus)
            n = snprintf(chips + used, sizeof chips - used, " and 0x%02x", d->addr);
        else
            n = snprintf(chips + used, sizeof chips - used, " and %s", d->where);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    snprintf(s->description, sizeof s->description,
             "%sINA3221 at %.64s (%.32s), I2C, a sample per conversion (CVRF)",
             m->emulated ? "emulated " : "", chips,
             p->board ? p->board->name : "board not in the table");
}

static void add_rails(struct sensor *s, struct ina_i2c *m, const struct plan *p)
{
    s->rail_count = 0;
    for (unsigned i = 0; i < p->chip_count; i++) {
        struct chip *ch = &m->chip[i];
        for (unsigned c = 0; c < INA3221_CHANNELS; c++) {
            ch->rail[c] = -1;
            if (p->chip[i].rail[c] == NULL)
                continue;
            unsigned r = s->rail_count++;
            struct sensor_rail *rail = &s->rails[r];
            snprintf(rail->name, sizeof rail->name, "%s", p->chip[i].rail[c]);
            if (p->board != NULL) {
                rail->is_board_input =
                    p->board->input_rail && strcmp(rail->name, p->board->input_rail) == 0;
            } else {
                for (size_t k = 0; k < sizeof generic_input_rails / sizeof generic_input_rails[0];
                     k++) {
                    if (strcmp(rail->name, generic_input_rails[k]) == 0)
                        rail->is_board_input = true;
                }
            }
            if (rail->is_board_input && s->board_input_rail < 0)
                s->board_input_rail = (int)r;
            ch->rail[c] = (int)r;
            ch->channel_mask |= 1u << c;
            ch->shunt_uohm[c] = p->chip[i].shunt_uohm[c];
        }
    }
    s->board_input_is_sum = s->board_input_rail < 0 && p->board != NULL &&
                            p->board->input_is_sum && p->all_board_chips;
}

static int ina_open(struct sensor *s, const struct sensor_options *opt, char *err,
                    size_t errlen)
{
    struct plan p;
    if (make_plan(opt, &p, err, errlen) != 0)
        return -1;
    struct ina_i2c *m = calloc(1, sizeof *m);
    if (m == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    m->emulated = opt->i2c_emulated;
    s->board_input_rail = -1;
    add_rails(s, m, &p);

    /* Open every chip, check its IDs and read its CONFIG: nothing is written yet. */
    for (unsigned i = 0; i < p.chip_count; i++) {
        struct chip *ch = &m->chip[i];
        int rc = m->emulated
                     ? ina3221_emu_open(p.chip[i].bus, p.chip[i].addr, opt->force, &ch->dev,
                                        err, errlen)
                     : i2c_linux_open(opt->dev_root, opt->sysfs_root, p.chip[i].bus,
                                      p.chip[i].addr, opt->force, &ch->dev, err, errlen);
        if (rc != 0)
            goto fail;
        m->chip_count = i + 1;
        if (verify_ids(ch, err, errlen) != 0 ||
            read_reg(ch, INA3221_REG_CONFIG, &ch->found_config, err, errlen) != 0)
            goto fail;
    }
    /* Validate the request for every chip before the first write. */
    uint16_t config[BOARD_MAX_CHIPS];
    for (unsigned i = 0; i < m->chip_count; i++) {
        if (ina3221_config_for_request(m->chip[i].found_config, &opt->request,
                                       m->chip[i].channel_mask, &config[i], err, errlen) != 0)
            goto fail;
    }
    for (unsigned i = 0; i < m->chip_count; i++) {
        if (program(&m->chip[i], config[i], err, errlen) != 0)
            goto fail;
        log_info("sensor", "%sINA3221 at %s: CONFIG 0x%04x -> 0x%04x, one cycle %u us",
                 m->emulated ? "emulated " : "", m->chip[i].dev->where,
                 m->chip[i].found_config, m->chip[i].config,
                 ina3221_cycle_us(m->chip[i].config));
    }

    s->impl = m;
    s->asked = opt->request;
    report_got(s, m);
    log_period_note(&s->asked, &s->got);
    s->simulated = m->emulated;
    describe(s, m, &p);
    return 0;

fail:
    free_impl(m); /* restores any chip already written */
    s->rail_count = 0;
    s->board_input_rail = -1;
    s->board_input_is_sum = false;
    return -1;
}

/*
 * Waits for CVRF on one chip (see the header comment) and sets *end_ns to the
 * estimated end of the cycle it announces.
 */
static int wait_fresh(struct chip *ch, int64_t *end_ns, char *err, size_t errlen)
{
    int64_t start = clock_mono_ns();
    int64_t deadline = start + TIMEOUT_CYCLES * ch->cycle_ns;
    int64_t first_poll = ch->anchor_ns + ch->cycle_ns + ch->guard_ns;
    if (first_poll > start)
        clock_sleep_until_ns(first_poll);
    bool saw_clear = false;
    for (;;) {
        int64_t before = clock_mono_ns();
        uint16_t mask;
        if (read_reg(ch, INA3221_REG_MASK_ENABLE, &mask, err, errlen) != 0)
            return -1;
        if (mask & INA3221_MASK_CVRF) {
            int64_t after = clock_mono_ns();
            int64_t end;
            if (saw_clear) {
                end = before; /* it ended since the last poll: measured to a poll interval */
            } else {
                end = ch->anchor_ns + ch->cycle_ns - ch->lead_ns;
                if (end > after)
                    end = after;
                if (end < after - ch->cycle_ns)
                    end = after - ch->cycle_ns; /* CVRF waited: the latest cycle ended within one */
            }
            if (end <= ch->anchor_ns)
                end = ch->anchor_ns + 1;
            ch->anchor_ns = end;
            *end_ns = end;
            return 0;
        }
        if (before > deadline) {
            snprintf(err, errlen,
                     "no fresh conversion from the INA3221 at %s for %.1f ms (CVRF stays "
                     "clear; one cycle is %.0f us): the chip stopped converting or another "
                     "reader clears the flag",
                     ch->dev->where, (double)(before - start) / 1e6,
                     (double)ch->cycle_ns / 1e3);
            return -1;
        }
        saw_clear = true;
        clock_sleep_until_ns(clock_mono_ns() + ch->poll_ns);
    }
}

static int read_chip(struct chip *ch, struct sensor_sample *out, char *err, size_t errlen)
{
    for (unsigned c = 0; c < INA3221_CHANNELS; c++) {
        if (ch->rail[c] < 0)
            continue;
        uint16_t shunt_raw, bus_raw;
        if (read_reg(ch, ina3221_reg_shunt(c), &shunt_raw, err, errlen) != 0 ||
            read_reg(ch, ina3221_reg_bus(c), &bus_raw, err, errlen) != 0)
            return -1;
        double shunt_uv = ina3221_decode_shunt_uv(shunt_raw);
        double bus_mv = ina3221_decode_bus_mv(bus_raw);
        double current_ma = ina3221_current_ma(shunt_uv, ch->shunt_uohm[c]);
        int r = ch->rail[c];
        out->voltage_mv[r] = bus_mv;
        out->current_ma[r] = current_ma;
        out->power_mw[r] = ina3221_power_mw(bus_mv, current_ma);
    }
    return 0;
}

static int ina_read(struct sensor *s, struct sensor_sample *out, char *err, size_t errlen)
{
    struct ina_i2c *m = s->impl;
    memset(out, 0, sizeof *out);
    int64_t t = 0;
    for (unsigned i = 0; i < m->chip_count; i++) {
        int64_t end;
        if (wait_fresh(&m->chip[i], &end, err, errlen) != 0 ||
            read_chip(&m->chip[i], out, err, errlen) != 0)
            return -1;
        if (end > t)
            t = end;
    }
    out->t_ns = t;
    return 0;
}

static int ina_configure(struct sensor *s, const struct sensor_sampling *req, char *err,
                         size_t errlen)
{
    struct ina_i2c *m = s->impl;
    uint16_t next[BOARD_MAX_CHIPS], previous[BOARD_MAX_CHIPS];
    for (unsigned i = 0; i < m->chip_count; i++) {
        previous[i] = m->chip[i].config;
        if (ina3221_config_for_request(m->chip[i].config, req, m->chip[i].channel_mask,
                                       &next[i], err, errlen) != 0)
            return -1;
    }
    for (unsigned i = 0; i < m->chip_count; i++) {
        if (program(&m->chip[i], next[i], err, errlen) == 0)
            continue;
        /* Put the chips back as they were sampling; the error stays the first one. */
        for (unsigned j = 0; j <= i; j++) {
            char why[200];
            if (program(&m->chip[j], previous[j], why, sizeof why) != 0)
                log_warn("sensor", "ina3221-i2c: undoing a failed reconfiguration: %s", why);
        }
        report_got(s, m);
        return -1;
    }
    s->asked = *req;
    report_got(s, m);
    log_period_note(&s->asked, &s->got);
    log_info("sensor",
             "ina3221-i2c: sampling now averaging %u, bus %u us, shunt %u us: a fresh sample "
             "every %u us",
             s->got.averaging, s->got.bus_conv_us, s->got.shunt_conv_us, s->got.period_us);
    return 0;
}

static void ina_close(struct sensor *s)
{
    if (s->impl != NULL)
        free_impl(s->impl);
    s->impl = NULL;
}

const struct sensor_backend sensor_backend_ina3221_i2c = {
    .name = "ina3221-i2c",
    .paces_itself = true,
    .open = ina_open,
    .read = ina_read,
    .close = ina_close,
    .configure = ina_configure,
};
