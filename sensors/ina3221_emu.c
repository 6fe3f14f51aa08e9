/*
 * ina3221_emu.c - the emulated INA3221 (ina3221_emu.h): a register file, a
 * conversion engine that runs lazily on the clock, faults, and the process-wide
 * table that stands in for /dev/i2c-N.
 *
 * The engine never runs a thread: every transfer first catches the chip up to
 * "now" by completing, in order, each conversion whose end time has passed
 * since the last CONFIG write (k-th conversion of the sequence ends at
 * t0 + (k / slots) * cycle + slot_end[k % slots]). Timing is therefore exact
 * to the clock, and with a test clock it is fully deterministic.
 */
#include "ina3221_emu.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "ina3221.h"

#define MAX_SLOTS (2 * INA3221_CHANNELS)
#define NS_PER_US 1000LL
#define KEEP_CYCLES_PER_AVG 8 /* catch-up converts at most 8 x AVG + 16 cycles */
#define KEEP_CYCLES_MIN 16

/* Default inputs, documented in ina3221_emu.h. */
static const struct ina3221_emu_input default_inputs[INA3221_CHANNELS] = {
    {4000.0, 5000.0},
    {2000.0, 5000.0},
    {1000.0, 5000.0},
};

/* One conversion of the sequence: which channel and quantity, when inside a cycle. */
struct slot {
    unsigned channel;
    bool bus;
    int64_t start_ns, end_ns; /* offsets from the start of the cycle */
};

struct ina3221_emu {
    struct ina3221_emu *next; /* registry list; bus, addr, refs under registry_lock */
    int bus;
    unsigned addr;
    unsigned refs;

    pthread_mutex_t mu; /* everything below */
    uint16_t regs[256];
    bool stuck[256];
    uint16_t stuck_value[256];
    struct ina3221_emu_input input[INA3221_CHANNELS];
    ina3221_emu_signal_fn signal;
    void *signal_ctx;
    ina3221_emu_clock_fn clock;
    void *clock_ctx;
    unsigned fail_count;
    int fail_errno;
    int vanished_errno;
    unsigned transfer_us;
    char driver[32];

    /* conversion engine */
    bool running;
    bool continuous;
    int64_t t0_ns;    /* start of the sequence (last CONFIG write) */
    int64_t cycle_ns;
    unsigned nslots;
    struct slot slots[MAX_SLOTS];
    uint64_t done;    /* conversions completed since t0 */
    unsigned averaging;
    double filtered[INA3221_CHANNELS][2]; /* output before rounding, in LSBs; [c][bus] */
    int32_t sum_code;                     /* single shunt conversions summed this cycle */
    struct ina3221_emu_stats stats;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ina3221_emu *registry;

static void lock(pthread_mutex_t *m)
{
    int rc = pthread_mutex_lock(m);
    if (rc != 0)
        abort(); /* only on a corrupted mutex: nothing sensible is left to do */
}

static void unlock(pthread_mutex_t *m) { pthread_mutex_unlock(m); }

static int64_t now_ns(struct ina3221_emu *e)
{
    return e->clock ? e->clock(e->clock_ctx) : clock_mono_ns();
}

/* ---- conversion engine (chip lock held) ---- */

static void start_sequence(struct ina3221_emu *e, int64_t now)
{
    uint16_t config = e->regs[INA3221_REG_CONFIG];
    struct ina3221_config c;
    ina3221_config_decode(config, &c);
    e->averaging = c.averaging;
    e->nslots = 0;
    int64_t t = 0;
    for (unsigned ch = 0; ch < INA3221_CHANNELS; ch++) {
        if (!c.channel_enabled[ch])
            continue;
        if (c.mode & INA3221_MODE_SHUNT) {
            int64_t d = (int64_t)c.shunt_conv_us * NS_PER_US;
            e->slots[e->nslots++] = (struct slot){ch, false, t, t + d};
            t += d;
        }
        if (c.mode & INA3221_MODE_BUS) {
            int64_t d = (int64_t)c.bus_conv_us * NS_PER_US;
            e->slots[e->nslots++] = (struct slot){ch, true, t, t + d};
            t += d;
        }
    }
    e->cycle_ns = t;
    e->running = e->nslots > 0;
    e->continuous = (c.mode & INA3221_MODE_CONTINUOUS) != 0;
    e->t0_ns = now;
    e->done = 0;
    e->sum_code = 0;
}

static int32_t quantise(double value, int32_t lo, int32_t hi)
{
    if (!isfinite(value))
        return value > 0 ? hi : (value < 0 ? lo : 0);
    if (value <= (double)lo)
        return lo;
    if (value >= (double)hi)
        return hi;
    return (int32_t)lround(value);
}

static void convert(struct ina3221_emu *e, const struct slot *s, int64_t t_ns)
{
    struct ina3221_emu_input in = e->input[s->channel];
    if (e->signal)
        e->signal(e->signal_ctx, t_ns, s->channel, &in);
    double lsbs = s->bus ? in.bus_mv / INA3221_BUS_LSB_MV : in.shunt_uv / INA3221_SHUNT_LSB_UV;
    int32_t sample = quantise(lsbs, INA3221_DATA_CODE_MIN, INA3221_DATA_CODE_MAX);
    double *f = &e->filtered[s->channel][s->bus ? 1 : 0];
    *f += ((double)sample - *f) / (double)e->averaging;
    int32_t out = quantise(*f, INA3221_DATA_CODE_MIN, INA3221_DATA_CODE_MAX);
    uint8_t reg = s->bus ? ina3221_reg_bus(s->channel) : ina3221_reg_shunt(s->channel);
    e->regs[reg] = ina3221_data_raw(out);
    if (!s->bus && (e->regs[INA3221_REG_MASK_ENABLE] & INA3221_MASK_SCC(s->channel)))
        e->sum_code += sample;
}

static void end_of_cycle(struct ina3221_emu *e)
{
    e->regs[INA3221_REG_SHUNT_SUM] = ina3221_shunt_sum_raw(e->sum_code);
    e->sum_code = 0;
    e->regs[INA3221_REG_MASK_ENABLE] |= INA3221_MASK_CVRF;
    e->stats.cycles++;
}

static void advance(struct ina3221_emu *e, int64_t now)
{
    if (!e->running || now < e->t0_ns)
        return;
    uint64_t n = e->nslots;
    if (e->continuous) {
        /* Skip whole cycles that cannot show in the output any more. */
        uint64_t cycles_passed = (uint64_t)((now - e->t0_ns) / e->cycle_ns);
        uint64_t keep = (uint64_t)KEEP_CYCLES_PER_AVG * e->averaging + KEEP_CYCLES_MIN;
        if (cycles_passed > keep && cycles_passed - keep > e->done / n) {
            e->done = (cycles_passed - keep) * n;
            e->sum_code = 0;
        }
    }
    for (;;) {
        uint64_t cycle = e->done / n;
        const struct slot *s = &e->slots[e->done % n];
        if (!e->continuous && cycle >= 1) {
            e->running = false; /* single shot: one cycle, then idle */
            return;
        }
        int64_t base = e->t0_ns + (int64_t)cycle * e->cycle_ns;
        if (base + s->end_ns > now)
            return;
        convert(e, s, base + (s->start_ns + s->end_ns) / 2);
        e->done++;
        if (e->done % n == 0)
            end_of_cycle(e);
    }
}

static void power_on_reset(struct ina3221_emu *e, int64_t now)
{
    memset(e->regs, 0, sizeof e->regs);
    for (size_t i = 0; i < ina3221_register_count(); i++) {
        const struct ina3221_register_info *r = ina3221_register_at(i);
        e->regs[r->addr] = r->reset;
    }
    memset(e->filtered, 0, sizeof e->filtered);
    start_sequence(e, now);
}

static void write_config(struct ina3221_emu *e, uint16_t value, int64_t now)
{
    if (value & INA3221_CONFIG_RST) {
        power_on_reset(e, now); /* RST clears itself: CONFIG reads 0x7127 */
        return;
    }
    e->regs[INA3221_REG_CONFIG] = value;
    if (value & (INA3221_MODE_SHUNT | INA3221_MODE_BUS))
        e->regs[INA3221_REG_MASK_ENABLE] &= (uint16_t)~INA3221_MASK_CVRF;
    start_sequence(e, now);
}

/* ---- transfers ---- */

/* An injected fault for this transfer, as -errno, or 0. Chip lock held. */
static int injected_fault(struct ina3221_emu *e)
{
    if (e->vanished_errno) {
        e->stats.failed++;
        return -e->vanished_errno;
    }
    if (e->fail_count > 0) {
        e->fail_count--;
        e->stats.failed++;
        return -e->fail_errno;
    }
    return 0;
}

static void bus_time(struct ina3221_emu *e)
{
    lock(&e->mu);
    unsigned us = e->transfer_us;
    unlock(&e->mu);
    if (us > 0)
        clock_sleep_until_ns(clock_mono_ns() + (int64_t)us * NS_PER_US);
}

static int emu_read_word(struct i2c_dev *d, uint8_t reg, uint16_t *word)
{
    struct ina3221_emu *e = d->impl;
    bus_time(e);
    lock(&e->mu);
    int rc = injected_fault(e);
    if (rc == 0) {
        advance(e, now_ns(e));
        uint16_t value;
        if (e->stuck[reg]) {
            value = e->stuck_value[reg];
        } else {
            value = ina3221_register_find(reg) ? e->regs[reg] : 0;
            if (reg == INA3221_REG_MASK_ENABLE && (value & INA3221_MASK_CVRF)) {
                e->regs[reg] &= (uint16_t)~INA3221_MASK_CVRF;
                e->stats.cvrf_reads++;
            }
        }
        e->stats.reads++;
        *word = i2c_swap16(value); /* SMBus: least significant byte first */
    }
    unlock(&e->mu);
    return rc;
}

static int emu_write_word(struct i2c_dev *d, uint8_t reg, uint16_t word)
{
    struct ina3221_emu *e = d->impl;
    uint16_t value = i2c_swap16(word);
    bus_time(e);
    lock(&e->mu);
    int rc = injected_fault(e);
    if (rc == 0) {
        int64_t now = now_ns(e);
        advance(e, now);
        e->stats.writes++;
        const struct ina3221_register_info *r = ina3221_register_find(reg);
        if (!e->stuck[reg] && r != NULL && r->writable_mask != 0) {
            if (reg == INA3221_REG_CONFIG) {
                e->stats.config_writes++;
                write_config(e, value, now);
            } else {
                e->regs[reg] = (uint16_t)((e->regs[reg] & ~r->writable_mask) |
                                          (value & r->writable_mask));
            }
        }
    }
    unlock(&e->mu);
    return rc;
}

static void emu_close(struct i2c_dev *d)
{
    ina3221_emu_release(d->impl);
    d->impl = NULL;
}

static const struct i2c_dev_ops emu_ops = {
    .read_word = emu_read_word,
    .write_word = emu_write_word,
    .close = emu_close,
};

/* ---- registry ---- */

static struct ina3221_emu *find_locked(int bus, unsigned addr)
{
    for (struct ina3221_emu *e = registry; e; e = e->next) {
        if (e->bus == bus && e->addr == addr)
            return e;
    }
    return NULL;
}

static int check_address(int bus, unsigned addr, char *err, size_t errlen)
{
    if (bus < 0) {
        snprintf(err, errlen, "emulated I2C bus %d is not a bus number", bus);
        return -1;
    }
    if (addr < INA3221_ADDR_MIN || addr > INA3221_ADDR_MAX) {
        snprintf(err, errlen, "0x%02x is not an INA3221 address (0x40..0x43)", addr);
        return -1;
    }
    return 0;
}

/* A new chip, registered, with one reference. Registry lock held. */
static struct ina3221_emu *create_locked(int bus, unsigned addr, char *err, size_t errlen)
{
    struct ina3221_emu *e = calloc(1, sizeof *e);
    if (e == NULL) {
        snprintf(err, errlen, "out of memory for an emulated INA3221");
        return NULL;
    }
    int rc = pthread_mutex_init(&e->mu, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "pthread_mutex_init: %s", strerror(rc));
        free(e);
        return NULL;
    }
    e->bus = bus;
    e->addr = addr;
    e->refs = 1;
    e->fail_errno = EIO;
    memcpy(e->input, default_inputs, sizeof e->input);
    power_on_reset(e, clock_mono_ns());
    e->next = registry;
    registry = e;
    return e;
}

int ina3221_emu_create(int bus, unsigned addr, struct ina3221_emu **out, char *err,
                       size_t errlen)
{
    *out = NULL;
    if (check_address(bus, addr, err, errlen) != 0)
        return -1;
    lock(&registry_lock);
    if (find_locked(bus, addr) != NULL) {
        unlock(&registry_lock);
        snprintf(err, errlen, "an emulated INA3221 already sits at 0x%02x on emulated i2c-%d",
                 addr, bus);
        return -1;
    }
    *out = create_locked(bus, addr, err, errlen);
    unlock(&registry_lock);
    return *out ? 0 : -1;
}

struct ina3221_emu *ina3221_emu_get(int bus, unsigned addr)
{
    lock(&registry_lock);
    struct ina3221_emu *e = find_locked(bus, addr);
    if (e)
        e->refs++;
    unlock(&registry_lock);
    return e;
}

void ina3221_emu_release(struct ina3221_emu *emu)
{
    if (emu == NULL)
        return;
    lock(&registry_lock);
    if (--emu->refs > 0) {
        unlock(&registry_lock);
        return;
    }
    for (struct ina3221_emu **p = &registry; *p; p = &(*p)->next) {
        if (*p == emu) {
            *p = emu->next;
            break;
        }
    }
    unlock(&registry_lock);
    pthread_mutex_destroy(&emu->mu);
    free(emu);
}

int ina3221_emu_open(int bus, unsigned addr, bool force, struct i2c_dev **out, char *err,
                     size_t errlen)
{
    *out = NULL;
    if (check_address(bus, addr, err, errlen) != 0)
        return -1;
    struct i2c_dev *d = calloc(1, sizeof *d);
    if (d == NULL) {
        snprintf(err, errlen, "out of memory opening an emulated I2C device");
        return -1;
    }
    d->ops = &emu_ops;
    d->bus = bus;
    d->addr = addr;
    snprintf(d->where, sizeof d->where, "0x%02x on emulated i2c-%d", addr, bus);
    char path[32];
    snprintf(path, sizeof path, "emulated i2c-%d", bus);

    lock(&registry_lock);
    struct ina3221_emu *e = find_locked(bus, addr);
    if (e != NULL) {
        e->refs++;
    } else {
        e = create_locked(bus, addr, err, errlen);
        if (e == NULL) {
            unlock(&registry_lock);
            free(d);
            return -1;
        }
    }
    unlock(&registry_lock);

    lock(&e->mu);
    char driver[sizeof e->driver];
    memcpy(driver, e->driver, sizeof driver);
    unlock(&e->mu);
    if (driver[0] != '\0') {
        if (!force) {
            i2c_format_driver_owned(err, errlen, addr, path, driver);
            ina3221_emu_release(e);
            free(d);
            return -1;
        }
        log_warn("sensor",
                 "force = true: using address 0x%02x on %s although the (emulated) kernel "
                 "driver %s owns it; a real driver may rewrite CONFIG and clear CVRF",
                 addr, path, driver);
    }
    d->impl = e;
    *out = d;
    return 0;
}

/* ---- test controls ---- */

void ina3221_emu_set_input(struct ina3221_emu *emu, unsigned channel, double shunt_uv,
                           double bus_mv)
{
    if (channel >= INA3221_CHANNELS)
        return;
    lock(&emu->mu);
    advance(emu, now_ns(emu)); /* conversions that ended before now saw the old input */
    emu->input[channel].shunt_uv = shunt_uv;
    emu->input[channel].bus_mv = bus_mv;
    emu->signal = NULL;
    emu->signal_ctx = NULL;
    unlock(&emu->mu);
}

void ina3221_emu_set_signal(struct ina3221_emu *emu, ina3221_emu_signal_fn fn, void *ctx)
{
    lock(&emu->mu);
    advance(emu, now_ns(emu));
    emu->signal = fn;
    emu->signal_ctx = fn ? ctx : NULL;
    unlock(&emu->mu);
}

void ina3221_emu_set_clock(struct ina3221_emu *emu, ina3221_emu_clock_fn fn, void *ctx)
{
    lock(&emu->mu);
    emu->clock = fn;
    emu->clock_ctx = fn ? ctx : NULL;
    start_sequence(emu, now_ns(emu));
    unlock(&emu->mu);
}

void ina3221_emu_fail_next(struct ina3221_emu *emu, unsigned transfers, int errnum)
{
    lock(&emu->mu);
    emu->fail_count = transfers;
    emu->fail_errno = errnum > 0 ? errnum : EIO;
    unlock(&emu->mu);
}

void ina3221_emu_stick(struct ina3221_emu *emu, uint8_t reg, uint16_t value)
{
    lock(&emu->mu);
    emu->stuck[reg] = true;
    emu->stuck_value[reg] = value;
    unlock(&emu->mu);
}

void ina3221_emu_unstick(struct ina3221_emu *emu, uint8_t reg)
{
    lock(&emu->mu);
    emu->stuck[reg] = false;
    unlock(&emu->mu);
}

void ina3221_emu_vanish(struct ina3221_emu *emu, int errnum)
{
    lock(&emu->mu);
    emu->vanished_errno = errnum > 0 ? errnum : 0;
    unlock(&emu->mu);
}

void ina3221_emu_bind_driver(struct ina3221_emu *emu, const char *driver)
{
    lock(&emu->mu);
    snprintf(emu->driver, sizeof emu->driver, "%s", driver ? driver : "");
    unlock(&emu->mu);
}

void ina3221_emu_set_transfer_us(struct ina3221_emu *emu, unsigned transfer_us)
{
    lock(&emu->mu);
    emu->transfer_us = transfer_us;
    unlock(&emu->mu);
}

uint16_t ina3221_emu_peek(struct ina3221_emu *emu, uint8_t reg)
{
    lock(&emu->mu);
    advance(emu, now_ns(emu));
    uint16_t v = emu->regs[reg];
    unlock(&emu->mu);
    return v;
}

void ina3221_emu_get_stats(struct ina3221_emu *emu, struct ina3221_emu_stats *out)
{
    lock(&emu->mu);
    advance(emu, now_ns(emu));
    *out = emu->stats;
    unlock(&emu->mu);
}
