/*
 * device_state.h - a snapshot of the board's state, stored with every measurement.
 *
 * Latency and power depend on clocks and temperature as much as on the kernel,
 * so measure.c records what sysfs tells about them next to each result
 * (DESIGN.md, Measurement protocol step 9). Only what is readable is reported:
 * a missing file is simply absent from the object, never a zero.
 */
#ifndef JETPROF_DEVICE_STATE_H
#define JETPROF_DEVICE_STATE_H

#include <stddef.h>

/*
 * Writes a JSON object read below sysfs_root ("/sys" in production, a fixture tree
 * in tests), e.g.
 *   {"gpu_freq_mhz":1300.5,"cpu_freq_mhz":1420.8,
 *    "temperatures_c":{"CPU-therm":41.5,"GPU-therm":40.0}}
 * from
 *   <root>/class/devfreq/<gpu node>/cur_freq                (Hz; Jetson GPU)
 *   <root>/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq (kHz)
 *   <root>/class/thermal/thermal_zone<N>/{type,temp}        (millidegrees C)
 * The text always fits outlen and is always a complete object: members that do
 * not fit are left out (GPU clock first in, temperatures last). Returns 0, or -1
 * when outlen cannot hold even "{}" (out is then "" if outlen > 0).
 */
int device_state_json(const char *sysfs_root, char *out, size_t outlen);

#endif
