/*
 * device_state.h - a snapshot of the board's state, stored with every measurement.
 *
 * Latency and power depend on clocks, power mode and temperature as much as on
 * the kernel, so measure.c records what the machine tells about them next to
 * each result (DESIGN.md, Measurement protocol step 9). Only what is readable is
 * reported: a missing file is simply absent from the object, never a zero.
 *
 * Members, in the order they go in (when the buffer is too small, a member and
 * everything after it are left out, so the text is always a complete object):
 *   gpu_freq_mhz    Jetson: <sysfs>/class/devfreq/<gpu node>/cur_freq (Hz);
 *                   desktop: NVML graphics clock (nvmlDeviceGetClockInfo)
 *   mem_freq_mhz    Jetson: EMC clock, <sysfs>/kernel/debug/bpmp/debug/clk/emc/rate
 *                   (Hz, debugfs: root only) or an EMC devfreq node's cur_freq;
 *                   desktop: NVML memory clock
 *   power_mode_id   nvpmodel's mode: <root>/var/lib/nvpmodel/status, e.g.
 *                   "pmode:0002 fmode:quiet" -> 2 (the mode nvpmodel last set,
 *                   which it keeps across reboots)
 *   power_mode      its name from <root>/etc/nvpmodel.conf,
 *                   "< POWER_MODEL ID=2 NAME=MODE_30W >" -> "MODE_30W"
 *   jetson_clocks   "on", "off" or "unknown"; reported on a Jetson only (a GPU
 *                   devfreq node or an nvpmodel status exists). The rule, as
 *                   jetson_clocks leaves the clocks: "on" when the GPU devfreq
 *                   node has min_freq == max_freq == cur_freq AND, where the EMC
 *                   is readable, the EMC is pinned too (bpmp debugfs: rate ==
 *                   max_rate and mrq_rate_locked is 1 where readable; EMC devfreq:
 *                   min == max == cur); "off" when any of these differ;
 *                   "unknown" when the GPU node's three files cannot all be read.
 *                   CPU clocks are not part of the rule (jetson_clocks pins them
 *                   too, but kernels here run on the GPU).
 *   gpu_governor    <gpu node>/governor, e.g. "nvhost_podgov"
 *   cpu_freq_mhz    <sysfs>/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq (kHz)
 *   temperatures_c  {"nvml-gpu": NVML GPU temperature, then one member per readable
 *                   <sysfs>/class/thermal/thermal_zone<N>/{type,temp} in zone order}
 *
 * NVML (desktop and datacenter GPUs) is loaded with dlopen like the nvml sensor,
 * from the same library option; where it does not load or initialise, its
 * members are absent and the reason is logged once at open.
 */
#ifndef JETPROF_DEVICE_STATE_H
#define JETPROF_DEVICE_STATE_H

#include <stdbool.h>
#include <stddef.h>

/* Where the snapshot is read from. Strings are copied by device_state_open. */
struct device_state_sources {
    const char *sysfs_root; /* NULL or "" = "/sys" */
    /* Root below which var/lib/nvpmodel/status and etc/nvpmodel.conf are read:
     * "/" in production, a fixture tree in tests; NULL or "" = not read. */
    const char *state_root;
    bool nvml;            /* report NVML clocks and temperature when a library loads */
    const char *nvml_lib; /* NULL or "" = "libnvidia-ml.so.1" (sensor.nvml_lib) */
    unsigned nvml_device; /* NVML device index (sensor.nvml_device) */
};

/* The sources, with NVML loaded and initialised once (nvmlInit can take long
 * on a GPU without persistence mode: not something to pay per measurement). */
struct device_state;

/*
 * A missing or failing NVML is not an error (logged, members left out). 0, or
 * -1 with err when out of memory or src is NULL.
 */
int device_state_open(const struct device_state_sources *src, struct device_state **out,
                      char *err, size_t errlen);

/*
 * Writes the JSON object (see above) into out. The text always fits outlen and
 * is always a complete object ("{}" when nothing is readable). Returns 0, or -1
 * when outlen cannot hold even "{}" (out is then "" if outlen > 0). Safe to call
 * from one thread at a time per handle.
 */
int device_state_read(struct device_state *ds, char *out, size_t outlen);

void device_state_close(struct device_state *ds); /* NULL is fine */

/* One-shot: open, read, close. Same result as device_state_read. */
int device_state_json_from(const struct device_state_sources *src, char *out, size_t outlen);

/* Sysfs only (no nvpmodel, no NVML), as before the sources existed:
 * device_state_json_from(&(struct device_state_sources){.sysfs_root = sysfs_root}, ...). */
int device_state_json(const char *sysfs_root, char *out, size_t outlen);

#endif
