/*
 * boards.c - the table of Jetson boards jetprof knows (see boards.h).
 *
 * One row per board: how to recognise it from the device-tree model string,
 * where its INA3221 chips sit, the rail and shunt on each channel, and which
 * rail carries the whole module's power. The INA3221 backends read this table;
 * nothing else in the tree holds board facts.
 *
 * Where the facts come from (checked while writing this table):
 *   - Model strings: the `model` property of NVIDIA's L4T device trees and what
 *     users report from /sys/firmware/devicetree/base/model:
 *       Nano        "NVIDIA Jetson Nano Developer Kit" (L4T 32.x)
 *       TX2         "quill" (L4T 32.4.4; NVIDIA's code name for the TX2 carrier)
 *       Xavier NX   "NVIDIA Jetson Xavier NX Developer Kit" (L4T 32 and 35 DTs)
 *       AGX Xavier  "Jetson-AGX" (L4T 32.2 and later; 32.1 said "jetson-xavier",
 *                   which is not matched)
 *       Orin NX     "NVIDIA Orin NX Developer Kit"
 *       Orin Nano   "NVIDIA Orin Nano Developer Kit" (L4T 35.3.1)
 *       AGX Orin    "Jetson AGX Orin" (L4T 35 DT), "NVIDIA Jetson AGX Orin
 *                   Developer Kit" (later releases)
 *     model_match is the shortest substring that tells the boards apart and
 *     covers every spelling above ("Orin Nano" never matches "Jetson Nano").
 *   - Buses, addresses, rail labels and shunts: NVIDIA's powermon device-tree
 *     fragments (tegra194-powermon-p3668/p2888, tegra234-p3767/p3701-powermon)
 *     and ../shared/reference/ina3221.md. TX2 shunts (10 mOhm, 5 mOhm on VDD_IN)
 *     are from the upstream tegra186-p3310 device tree; Nano's 5 mOhm matches the
 *     32760 mA critical limit its driver reports for the reset-value register.
 *   - Board input: VDD_IN or POM_5V_IN where the module has one. AGX Xavier and
 *     AGX Orin have none (their INA3221s watch sub-rails, and VIN_SYS_5V0 /
 *     SYS5V are supplies, not the module total): the total is the sum of rails,
 *     and that is flagged.
 * A channel whose rail is NULL is not connected ("NC" in some releases, a
 * disabled channel node in others).
 */
#include "boards.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MODEL_REL_PATH "/firmware/devicetree/base/model"

static const struct board board_table[] = {
    {
        .name = "Jetson Nano",
        .model_match = "Jetson Nano",
        .chip_count = 1,
        .chips = {{6, 0x40, {{"POM_5V_IN", 5000}, {"POM_5V_GPU", 5000}, {"POM_5V_CPU", 5000}}}},
        .input_rail = "POM_5V_IN",
        .input_is_sum = false,
        .fixture = "nano-jp4",
    },
    {
        .name = "Jetson TX2",
        .model_match = "quill",
        .chip_count = 2,
        .chips = {{0, 0x40, {{"VDD_SYS_GPU", 10000}, {"VDD_SYS_SOC", 10000}, {"VDD_4V0_WIFI", 10000}}},
                  {0, 0x41, {{"VDD_IN", 5000}, {"VDD_SYS_CPU", 10000}, {"VDD_SYS_DDR", 10000}}}},
        .input_rail = "VDD_IN",
        .input_is_sum = false,
        .fixture = "tx2-jp4",
    },
    {
        .name = "Jetson Xavier NX",
        .model_match = "Xavier NX",
        .chip_count = 1,
        .chips = {{7, 0x40, {{"VDD_IN", 5000}, {"VDD_CPU_GPU_CV", 5000}, {"VDD_SOC", 5000}}}},
        .input_rail = "VDD_IN",
        .input_is_sum = false,
        .fixture = "xavier-nx-jp5",
    },
    {
        .name = "Jetson AGX Xavier",
        .model_match = "Jetson-AGX",
        .chip_count = 2,
        .chips = {{1, 0x40, {{"GPU", 5000}, {"CPU", 5000}, {"SOC", 5000}}},
                  {1, 0x41, {{"CV", 5000}, {"VDDRQ", 5000}, {"SYS5V", 5000}}}},
        .input_rail = NULL,
        .input_is_sum = true,
        .fixture = "agx-xavier-jp5",
    },
    {
        .name = "Jetson Orin NX",
        .model_match = "Orin NX",
        .chip_count = 1,
        .chips = {{1, 0x40, {{"VDD_IN", 5000}, {"VDD_CPU_GPU_CV", 5000}, {"VDD_SOC", 5000}}}},
        .input_rail = "VDD_IN",
        .input_is_sum = false,
        .fixture = "orin-nx",
    },
    {
        .name = "Jetson Orin Nano",
        .model_match = "Orin Nano",
        .chip_count = 1,
        .chips = {{1, 0x40, {{"VDD_IN", 5000}, {"VDD_CPU_GPU_CV", 5000}, {"VDD_SOC", 5000}}}},
        .input_rail = "VDD_IN",
        .input_is_sum = false,
        .fixture = "orin-nano",
    },
    {
        .name = "Jetson AGX Orin",
        .model_match = "AGX Orin",
        .chip_count = 2,
        .chips = {{1, 0x40, {{"VDD_GPU_SOC", 2000}, {"VDD_CPU_CV", 2000}, {"VIN_SYS_5V0", 2000}}},
                  {1, 0x41, {{NULL, 0}, {"VDDQ_VDD2_1V8AO", 2000}, {NULL, 0}}}},
        .input_rail = NULL,
        .input_is_sum = true,
        .fixture = "agx-orin",
    },
};
#define BOARD_COUNT (sizeof board_table / sizeof board_table[0])

size_t boards_count(void) { return BOARD_COUNT; }

const struct board *boards_at(size_t i) { return i < BOARD_COUNT ? &board_table[i] : NULL; }

const struct board *boards_match(const char *model)
{
    if (model == NULL || model[0] == '\0')
        return NULL;
    for (size_t i = 0; i < BOARD_COUNT; i++) {
        if (strstr(model, board_table[i].model_match) != NULL)
            return &board_table[i];
    }
    return NULL;
}

int boards_read_model(const char *sysfs_root, char *model, size_t modellen)
{
    if (model == NULL || modellen == 0)
        return -1;
    model[0] = '\0';
    char path[4096];
    int n = snprintf(path, sizeof path, "%s%s", sysfs_root ? sysfs_root : "", MODEL_REL_PATH);
    if (n < 0 || (size_t)n >= sizeof path)
        return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t used = 0;
    while (used + 1 < modellen) {
        ssize_t r = read(fd, model + used, modellen - 1 - used);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            close(fd);
            model[0] = '\0';
            return -1;
        }
        if (r == 0)
            break;
        used += (size_t)r;
    }
    close(fd);
    model[used] = '\0';
    /* A device-tree string property ends in NUL; anything after the first NUL
     * is not part of the model. Trailing newlines come from hand-made trees. */
    used = strlen(model);
    while (used > 0 && (model[used - 1] == '\n' || model[used - 1] == '\r'))
        model[--used] = '\0';
    return 0;
}
