/*
 * ina3221_emu.h - an emulated TI INA3221 behind the i2c_bus.h interface, so the
 * real ina3221-i2c backend code runs in tests, benchmarks and on machines
 * without the chip (sensor option i2c_emulated; every value is then simulated).
 *
 * What is modelled (datasheet SBOS576; ina3221.h has the register codec):
 *   - the register map with its power-on values, the IDs 0x5449/0x3220, which
 *     bits a write changes, and SMBus words sent least significant byte first;
 *   - CONFIG: a write aborts the conversion in progress and restarts the
 *     sequence at that instant; RST restores every register to its power-on
 *     value (CONFIG 0x7127) and clears itself; power-down, single-shot and
 *     continuous modes, shunt and/or bus;
 *   - conversion timing on CLOCK_MONOTONIC (or a test clock): channel by
 *     channel, shunt then bus, each taking its VSHCT/VBUSCT; a conversion
 *     samples the input at its midpoint and updates its output register when
 *     it ends; cycle = channels x (VSHCT + VBUSCT);
 *   - the running averaging filter: at every conversion the output moves by
 *     1/N of (new sample - output), kept at full precision inside and rounded to
 *     the register's LSB (40 uV shunt, 8 mV bus) on output; samples are
 *     quantised and clamped to the ADC's range first;
 *   - CVRF (mask/enable bit 0): set at the end of every cycle, cleared by a read
 *     of mask/enable (the read still returns it set) and by a CONFIG write that
 *     does not select power-down; the shunt-voltage sum register (0x0D) holds
 *     the sum of the single conversions of the channels selected by the
 *     summation-control bits, updated at the end of each cycle;
 *   - faults: the next N transfers fail (EIO by default), registers stuck at a
 *     value (reads return it, writes to it are lost), a vanished device (every
 *     transfer fails with ENXIO or EREMOTEIO, like a chip that no longer
 *     acknowledges), a kernel driver bound to the address (open fails unless
 *     forced), and an optional time per transfer to model the bus's speed.
 * Not modelled: alert flags and pins (warning, critical, power-valid, timing
 * control), which stay clear; noise; conversion-time tolerance. An idle chip
 * catches up lazily at the next transfer; after a long idle time only the last
 * 8 x AVG + 16 cycles are converted (older ones cannot show in the output).
 *
 * Chips live in a process-wide table keyed by (bus, address), the emulated
 * counterpart of /dev/i2c-N: a test creates a chip, sets its inputs and faults,
 * and the backend reaches it with ina3221_emu_open(). When the backend opens an
 * address where no chip was created (the daemon with i2c_emulated), a chip
 * with the default inputs appears there and lives as long as that device is
 * open. Default inputs (constant and whole LSBs, so the daemon's numbers are
 * exact and predictable): every channel 5000 mV on the bus; shunt 4000, 2000
 * and 1000 uV on channels 1, 2 and 3, i.e. 800, 400, 200 mA and 4000, 2000,
 * 1000 mW behind 5 mOhm (2000, 1000, 500 mA behind 2 mOhm). The signal cannot
 * be set from outside the process.
 *
 * Chips are reference-counted: create and get take a reference, release drops
 * one, the device from ina3221_emu_open holds one. All functions are
 * thread-safe (the sampler thread reads while a test injects faults).
 */
#ifndef JETPROF_INA3221_EMU_H
#define JETPROF_INA3221_EMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "i2c_bus.h"

struct ina3221_emu;

/* The true signal at one channel's inputs. */
struct ina3221_emu_input {
    double shunt_uv; /* voltage across the shunt, IN+ - IN- (negative = reverse current) */
    double bus_mv;   /* voltage at IN- against ground */
};

/* A signal as a function of time (CLOCK_MONOTONIC ns, or the test clock);
 * channel is 0-based. Called with the chip's lock held: it must not call back
 * into the emulator. */
typedef void (*ina3221_emu_signal_fn)(void *ctx, int64_t t_ns, unsigned channel,
                                      struct ina3221_emu_input *out);
typedef int64_t (*ina3221_emu_clock_fn)(void *ctx);

struct ina3221_emu_stats {
    uint64_t reads;         /* register reads performed */
    uint64_t writes;        /* register writes performed (lost or not) */
    uint64_t config_writes; /* writes that reached CONFIG */
    uint64_t failed;        /* transfers failed by an injected fault or vanishing */
    uint64_t cycles;        /* conversion cycles completed */
    uint64_t cvrf_reads;    /* mask/enable reads that returned CVRF set */
};

/* A chip at bus/addr (0x40..0x43) in its power-on state, converting with the
 * default inputs. -1 with err when the address is invalid or taken. */
int ina3221_emu_create(int bus, unsigned addr, struct ina3221_emu **out, char *err,
                       size_t errlen);
/* The chip at bus/addr with a new reference, or NULL. */
struct ina3221_emu *ina3221_emu_get(int bus, unsigned addr);
/* Drops a reference; the last one removes the chip. NULL is allowed. */
void ina3221_emu_release(struct ina3221_emu *emu);

/* Constant inputs of one channel (0-based; others are ignored); replaces a
 * signal function. */
void ina3221_emu_set_input(struct ina3221_emu *emu, unsigned channel, double shunt_uv,
                           double bus_mv);
/* Inputs from fn from now on; NULL goes back to the constant inputs. */
void ina3221_emu_set_signal(struct ina3221_emu *emu, ina3221_emu_signal_fn fn, void *ctx);
/* Time source (NULL = CLOCK_MONOTONIC). The conversion sequence restarts at the
 * new clock's present. */
void ina3221_emu_set_clock(struct ina3221_emu *emu, ina3221_emu_clock_fn fn, void *ctx);

/* Faults. */
void ina3221_emu_fail_next(struct ina3221_emu *emu, unsigned transfers, int errnum); /* 0 = EIO */
void ina3221_emu_stick(struct ina3221_emu *emu, uint8_t reg, uint16_t value);
void ina3221_emu_unstick(struct ina3221_emu *emu, uint8_t reg);
/* errnum ENXIO or EREMOTEIO: gone; 0: back (registers as they were). */
void ina3221_emu_vanish(struct ina3221_emu *emu, int errnum);
/* A kernel driver bound to the address (NULL = unbound): open fails unless forced. */
void ina3221_emu_bind_driver(struct ina3221_emu *emu, const char *driver);
/* Every transfer takes this long (sleeping), like a real bus: about 115 us for
 * an SMBus word at 400 kHz. 0 = instantaneous. */
void ina3221_emu_set_transfer_us(struct ina3221_emu *emu, unsigned transfer_us);

/* The register as the chip holds it, after catching up with time; no side
 * effect (CVRF stays) and no fault applies. */
uint16_t ina3221_emu_peek(struct ina3221_emu *emu, uint8_t reg);
void ina3221_emu_get_stats(struct ina3221_emu *emu, struct ina3221_emu_stats *out);

/*
 * An i2c_dev on the emulated chip at bus/addr ("0x40 on emulated i2c-1"),
 * creating one with the default inputs when there is none. A bound driver
 * makes it fail with the Linux wording unless force (then a warning is logged).
 */
int ina3221_emu_open(int bus, unsigned addr, bool force, struct i2c_dev **out, char *err,
                     size_t errlen);

#endif
