/*
 * i2c_bus.h - one device on an I2C bus, as the ina3221-i2c backend sees it:
 * SMBus word reads and writes of 8-bit registers, behind a small table of
 * operations so that the same backend code drives a real chip through
 * <dev_root>/i2c-N (i2c_bus_linux.c) or the emulated INA3221 (ina3221_emu.h).
 *
 * Byte order: SMBus carries a word least significant byte first, so the word an
 * SMBus "read word" returns has the first byte on the wire in bits 7..0. Chips
 * like the INA3221 send their 16-bit registers most significant byte first.
 * The operations move SMBus words exactly as the kernel's I2C_SMBUS ioctl does;
 * i2c_dev_read_be16 / i2c_dev_write_be16 do the swap, once, for every
 * implementation - the emulator sends LSB-first words like the real bus, so the
 * swap is exercised by the tests too.
 *
 * Errors are negative errno values from the transfer (EIO, ENXIO for an address
 * nobody acknowledges, EREMOTEIO on some adapters, ETIMEDOUT ...).
 */
#ifndef JETPROF_I2C_BUS_H
#define JETPROF_I2C_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

struct i2c_dev;

struct i2c_dev_ops {
    /* SMBus "read word data" / "write word data" of register `reg`; 0 or -errno. */
    int (*read_word)(struct i2c_dev *d, uint8_t reg, uint16_t *word);
    int (*write_word)(struct i2c_dev *d, uint8_t reg, uint16_t word);
    /* Releases impl (not d). */
    void (*close)(struct i2c_dev *d);
};

struct i2c_dev {
    const struct i2c_dev_ops *ops;
    void *impl;
    int bus;           /* adapter number N of /dev/i2c-N */
    unsigned addr;     /* 7-bit address */
    char where[96];    /* "0x40 on /dev/i2c-1", for messages */
};

static inline uint16_t i2c_swap16(uint16_t w)
{
    return (uint16_t)(((unsigned)w >> 8) | (((unsigned)w & 0xFFu) << 8));
}

/* A 16-bit register sent most significant byte first; 0 or -errno. */
static inline int i2c_dev_read_be16(struct i2c_dev *d, uint8_t reg, uint16_t *value)
{
    uint16_t word;
    int rc = d->ops->read_word(d, reg, &word);
    if (rc == 0)
        *value = i2c_swap16(word);
    return rc;
}

static inline int i2c_dev_write_be16(struct i2c_dev *d, uint8_t reg, uint16_t value)
{
    return d->ops->write_word(d, reg, i2c_swap16(value));
}

/* Closes the device and frees d. NULL is allowed. */
static inline void i2c_dev_close(struct i2c_dev *d)
{
    if (d == NULL)
        return;
    d->ops->close(d);
    free(d);
}

/*
 * The one wording of "a kernel driver owns this address", shared by the Linux
 * bus and the emulator so users and tests see the same sentence. driver may be
 * NULL when its name is unknown.
 */
static inline void i2c_format_driver_owned(char *err, size_t errlen, unsigned addr,
                                           const char *dev_path, const char *driver)
{
    snprintf(err, errlen,
             "address 0x%02x on %s is owned by a kernel driver (%s); unbind it or set "
             "force = true",
             addr, dev_path, driver && driver[0] ? driver : "name unknown");
}

/*
 * Opens <dev_root>/i2c-<bus> (dev_root NULL or "" = "/dev") and selects the
 * 7-bit address with ioctl(I2C_SLAVE). When a kernel driver owns the address
 * (EBUSY) it fails with i2c_format_driver_owned(), naming the driver found at
 * <sysfs_root>/bus/i2c/devices/<bus>-00<addr>/driver; with force it uses
 * I2C_SLAVE_FORCE instead and logs what that costs. Checks that the adapter
 * does SMBus word transfers. Returns 0 and *out, or -1 with err.
 */
int i2c_linux_open(const char *dev_root, const char *sysfs_root, int bus, unsigned addr,
                   bool force, struct i2c_dev **out, char *err, size_t errlen);

#endif
