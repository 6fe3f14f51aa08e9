/*
 * board.h - which board jetprofd runs on, for the device fingerprint (db_device)
 * and GET /v1/device.
 *
 * A Jetson names itself in the device tree (<sysfs_root>/firmware/devicetree/
 * base/model, e.g. "NVIDIA Jetson AGX Orin Developer Kit") and its Linux for
 * Tegra release in /etc/nv_tegra_release ("# R35 (release), REVISION: 4.1, ...").
 * Both paths are parameters so tests run against fixture files.
 */
#ifndef JETPROF_BOARD_H
#define JETPROF_BOARD_H

#include <stdbool.h>

#define BOARD_NV_TEGRA_RELEASE "/etc/nv_tegra_release"

struct board_identity {
    char model[128]; /* device-tree model, or "not a Jetson (<uname -m>[: <model>])" */
    char l4t[64];    /* "R35.4.1"; "" where not a Jetson */
    bool is_jetson;
};

/*
 * Fills out from <sysfs_root>/firmware/devicetree/base/model and the L4T release
 * file at nv_tegra_release_path (normally BOARD_NV_TEGRA_RELEASE). Never fails:
 * what cannot be read is reported as not a Jetson, and an L4T release file it
 * cannot parse is kept as its (trimmed) first line and logged.
 */
void board_identify(const char *sysfs_root, const char *nv_tegra_release_path,
                    struct board_identity *out);

/* "# R35 (release), REVISION: 4.1, GCID: ..." -> "R35.4.1". 0, or -1 when the
 * line is not in that form (out is then ""). Exposed for tests. */
int board_parse_l4t_release(const char *first_line, char *out, unsigned long outlen);

#endif
