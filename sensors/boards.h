/*
 * boards.h - the Jetson boards jetprof knows: how to recognise them (the
 * device-tree model string), where their INA3221 chips sit (I2C bus and address),
 * which rail is on which channel with which shunt, and which rail carries the
 * whole module's power. One table in boards.c, read by every INA3221 backend.
 * Facts from ../shared/reference/ina3221.md and NVIDIA's device trees.
 */
#ifndef JETPROF_BOARDS_H
#define JETPROF_BOARDS_H

#include <stdbool.h>
#include <stddef.h>

#define BOARD_MAX_CHIPS 2

struct board_channel {
    const char *rail;    /* rail name as the driver labels it; NULL or "NC" = unused */
    unsigned shunt_uohm; /* shunt resistance in micro-ohms */
};

struct board_chip {
    int i2c_bus;
    unsigned addr;       /* 7-bit, 0x40..0x43 */
    struct board_channel channels[3];
};

struct board {
    const char *name;          /* "Jetson Orin Nano" */
    const char *model_match;   /* substring of the device-tree model string */
    unsigned chip_count;
    struct board_chip chips[BOARD_MAX_CHIPS];
    const char *input_rail;    /* "VDD_IN", "POM_5V_IN"; NULL = none (AGX Orin) */
    bool input_is_sum;         /* no input rail: the total is the sum of rails, flagged */
    const char *fixture;       /* tests/fixtures/sysfs/<fixture>/ directory name */
};

size_t boards_count(void);
const struct board *boards_at(size_t i);
/* The board whose model_match is contained in model, or NULL. */
const struct board *boards_match(const char *model);
/* Reads <sysfs_root>/firmware/devicetree/base/model (NULs and newlines stripped)
 * into model; 0, or -1 when absent. */
int boards_read_model(const char *sysfs_root, char *model, size_t modellen);

#endif
