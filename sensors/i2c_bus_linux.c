/*
 * i2c_bus_linux.c - i2c_bus.h on Linux: a device on /dev/i2c-N through the
 * i2c-dev character device.
 *
 * Transfers are SMBus word-data transactions through libi2c (i2c-tools,
 * <i2c/smbus.h>, -li2c): i2c_smbus_read_word_data / i2c_smbus_write_word_data.
 * SMBus words travel least significant byte first; the byte swap for MSB-first
 * chips is i2c_dev_read_be16/i2c_dev_write_be16's job (i2c_bus.h).
 *
 * Opening follows the kernel's rules: I2C_SLAVE fails with EBUSY while a kernel
 * driver is bound to the address. That is reported with the driver's name and
 * the two ways out; with force the address is taken with I2C_SLAVE_FORCE and a
 * warning says what the driver may still do behind our back.
 */
#include "i2c_bus.h"

#include <errno.h>
#include <fcntl.h>
#include <i2c/smbus.h>
#include <limits.h>
#include <linux/i2c-dev.h>
#include <linux/i2c.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common/log.h"

struct linux_dev {
    int fd;
};

static int linux_read_word(struct i2c_dev *d, uint8_t reg, uint16_t *word)
{
    struct linux_dev *ld = d->impl;
    __s32 v = i2c_smbus_read_word_data(ld->fd, reg);
    if (v < 0)
        return -errno; /* libi2c returns -1 with errno from the ioctl */
    *word = (uint16_t)v;
    return 0;
}

static int linux_write_word(struct i2c_dev *d, uint8_t reg, uint16_t word)
{
    struct linux_dev *ld = d->impl;
    if (i2c_smbus_write_word_data(ld->fd, reg, word) < 0)
        return -errno;
    return 0;
}

static void linux_close(struct i2c_dev *d)
{
    struct linux_dev *ld = d->impl;
    if (ld == NULL)
        return;
    close(ld->fd);
    free(ld);
    d->impl = NULL;
}

static const struct i2c_dev_ops linux_ops = {
    .read_word = linux_read_word,
    .write_word = linux_write_word,
    .close = linux_close,
};

/* Name of the driver bound to <bus>-00<addr>, from its sysfs "driver" link. */
static void bound_driver_name(const char *sysfs_root, int bus, unsigned addr, char *name,
                              size_t namelen)
{
    char link[PATH_MAX], target[PATH_MAX];
    name[0] = '\0';
    int n = snprintf(link, sizeof link, "%s/bus/i2c/devices/%d-%04x/driver",
                     sysfs_root && sysfs_root[0] ? sysfs_root : "/sys", bus, addr);
    if (n < 0 || (size_t)n >= sizeof link)
        return;
    ssize_t len = readlink(link, target, sizeof target - 1);
    if (len <= 0)
        return;
    target[len] = '\0';
    const char *base = strrchr(target, '/');
    const char *src = base ? base + 1 : target;
    size_t n_copy = strlen(src);
    if (n_copy >= namelen)
        n_copy = namelen - 1; /* a driver name longer than the buffer keeps its start */
    memcpy(name, src, n_copy);
    name[n_copy] = '\0';
}

int i2c_linux_open(const char *dev_root, const char *sysfs_root, int bus, unsigned addr,
                   bool force, struct i2c_dev **out, char *err, size_t errlen)
{
    *out = NULL;
    if (bus < 0) {
        snprintf(err, errlen, "I2C bus %d is not a bus number", bus);
        return -1;
    }
    if (addr < 0x03 || addr > 0x77) {
        snprintf(err, errlen, "I2C address 0x%x is not a 7-bit device address", addr);
        return -1;
    }
    const char *root = dev_root && dev_root[0] ? dev_root : "/dev";
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/i2c-%d", root, bus);
    if (n < 0 || (size_t)n >= sizeof path) {
        snprintf(err, errlen, "dev_root is too long (%zu bytes)", strlen(root));
        return -1;
    }

    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            snprintf(err, errlen,
                     "%s does not exist (no I2C adapter %d, or the i2c-dev module is not "
                     "loaded: modprobe i2c-dev)",
                     path, bus);
        else if (e == EACCES || e == EPERM)
            snprintf(err, errlen,
                     "%s: %s (the daemon needs root or read-write access to the device, "
                     "e.g. through the i2c group)",
                     path, strerror(e));
        else
            snprintf(err, errlen, "%s: %s", path, strerror(e));
        return -1;
    }

    unsigned long funcs = 0;
    if (ioctl(fd, I2C_FUNCS, &funcs) < 0) {
        snprintf(err, errlen, "%s is not an I2C adapter device (I2C_FUNCS: %s)", path,
                 strerror(errno));
        close(fd);
        return -1;
    }
    if ((funcs & I2C_FUNC_SMBUS_WORD_DATA) != I2C_FUNC_SMBUS_WORD_DATA) {
        snprintf(err, errlen,
                 "%s: the adapter does not do SMBus word transfers (functionality 0x%lx)",
                 path, funcs);
        close(fd);
        return -1;
    }

    char driver[64];
    if (ioctl(fd, I2C_SLAVE, (unsigned long)addr) < 0) {
        int e = errno;
        if (e != EBUSY) {
            snprintf(err, errlen, "selecting address 0x%02x on %s: %s", addr, path,
                     strerror(e));
            close(fd);
            return -1;
        }
        bound_driver_name(sysfs_root, bus, addr, driver, sizeof driver);
        if (!force) {
            i2c_format_driver_owned(err, errlen, addr, path, driver);
            close(fd);
            return -1;
        }
        if (ioctl(fd, I2C_SLAVE_FORCE, (unsigned long)addr) < 0) {
            snprintf(err, errlen, "forcing address 0x%02x on %s: %s", addr, path,
                     strerror(errno));
            close(fd);
            return -1;
        }
        log_warn("sensor",
                 "force = true: using address 0x%02x on %s although the kernel driver %s "
                 "owns it; the driver may rewrite CONFIG at any time (runtime resume "
                 "resets the chip and restores its cached configuration) and its reads "
                 "clear CVRF, which costs fresh samples; unbind it for clean sampling",
                 addr, path, driver[0] ? driver : "(name unknown)");
    }

    struct i2c_dev *d = calloc(1, sizeof *d);
    struct linux_dev *ld = calloc(1, sizeof *ld);
    if (d == NULL || ld == NULL) {
        free(d);
        free(ld);
        close(fd);
        snprintf(err, errlen, "out of memory opening %s", path);
        return -1;
    }
    ld->fd = fd;
    d->ops = &linux_ops;
    d->impl = ld;
    d->bus = bus;
    d->addr = addr;
    snprintf(d->where, sizeof d->where, "0x%02x on %.80s", addr, path);
    *out = d;
    return 0;
}
