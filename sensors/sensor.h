/*
 * sensor.h - the power-sensor backend interface.
 *
 * A backend probes for its hardware, lists its rails, accepts a sampling request
 * and reports the settings it actually got, reads one timestamped sample of all
 * rails (mV, mA, mW), and on close restores the configuration it found.
 * The sampler (sampler.h) is the only caller of sensor_read() while the daemon runs.
 *
 * Backends (DESIGN.md, Sensors): ina3221-hwmon, ina3221x-iio, ina3221-i2c, nvml, sim.
 * Each lives in its own file (sensor_<name>.c) and exposes one
 * `const struct sensor_backend sensor_backend_<name>`; sensor.c holds the table and
 * the "auto" choice. This build registers the backends that exist; a backend that is
 * not built is never faked.
 */
#ifndef JETPROF_SENSOR_H
#define JETPROF_SENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SENSOR_MAX_RAILS 8
#define SENSOR_RAIL_NAME_MAX 32

/* One reading of every rail, taken at t_ns (CLOCK_MONOTONIC). */
struct sensor_sample {
    int64_t t_ns;
    double voltage_mv[SENSOR_MAX_RAILS];
    double current_ma[SENSOR_MAX_RAILS];
    double power_mw[SENSOR_MAX_RAILS];
};

struct sensor_rail {
    char name[SENSOR_RAIL_NAME_MAX];
    bool is_board_input; /* the rail that carries the whole module's power (VDD_IN, POM_5V_IN) */
};

/*
 * Sampling settings, as asked for and as obtained. Zero in a field of the request
 * means "leave as found". For INA3221 backends these are the chip's fields; for
 * sim they describe the simulated converter. period_us is the expected time
 * between fresh samples: the sampler's pace and the denominator of the window's
 * expected sample count.
 */
struct sensor_sampling {
    unsigned averaging;     /* samples averaged per reported value: 1, 4, 16, ... 1024 */
    unsigned bus_conv_us;   /* bus-voltage conversion time */
    unsigned shunt_conv_us; /* shunt-voltage conversion time */
    unsigned period_us;     /* time between fresh samples of all rails */
};

/* Everything a backend may need to open; filled from the daemon's configuration. */
struct sensor_options {
    const char *sysfs_root; /* "/sys" in production, a fixture tree in tests */
    const char *dev_root;   /* "/dev" */
    const char *proc_root;  /* "/proc"; the sim backend reads <proc_root>/stat */
    struct sensor_sampling request;
    /* sim backend model (documented in sensor_sim.c and docs/sensors.md) */
    double sim_idle_mw;        /* board-input power with the CPUs idle */
    double sim_dynamic_mw;     /* extra board-input power with every CPU busy */
    double sim_noise_mw;       /* standard deviation of additive noise */
    unsigned sim_tau_us;       /* time constant of the simulated converter's smoothing */
    uint64_t sim_seed;         /* noise seed, so tests are repeatable */
    /* ina3221-i2c: everything not set here comes from the board table (boards.h) */
    int i2c_bus;               /* -1 = from the board table */
    unsigned i2c_addr;         /* 0 = from the board table; else 0x40..0x43 */
    unsigned shunt_uohm[3];    /* per channel; 0 = from the board table */
    const char *rail_names[3]; /* per channel; NULL = board table; "NC" = not connected */
    bool force;                /* I2C_SLAVE_FORCE when a kernel driver owns the address */
    bool i2c_emulated;         /* test double: the emulated INA3221 (ina3221_emu.h)
                                * instead of <dev_root>/i2c-N; values are simulated */
    /* nvml */
    const char *nvml_lib;      /* NULL or "" = "libnvidia-ml.so.1" */
    unsigned nvml_device;      /* device index */
};

struct sensor;

struct sensor_backend {
    const char *name;
    /* true: read() blocks until a fresh conversion is ready, so the sampler
     * calls it back to back; false: the sampler paces reads at period_us. */
    bool paces_itself;
    /* Probe and configure. Fills s->rails, s->rail_count, s->asked, s->got,
     * s->simulated, s->description and s->impl. On failure writes why into err
     * and leaves nothing allocated or reconfigured. */
    int (*open)(struct sensor *s, const struct sensor_options *opt, char *err, size_t errlen);
    /* One sample of all rails; sets out->t_ns. 0 or -1 with err. */
    int (*read)(struct sensor *s, struct sensor_sample *out, char *err, size_t errlen);
    /* Restore the configuration found at open and free impl. Must be safe to call
     * from the shutdown path after the sampler thread has stopped. */
    void (*close)(struct sensor *s);
    /* Apply new sampling while open (PUT /v1/sensor/sampling) and set s->got from
     * what the chip or driver actually took (read back). NULL = this backend's
     * sampling cannot be changed. Only called through sampler_reconfigure, with
     * the sampler's reads paused. */
    int (*configure)(struct sensor *s, const struct sensor_sampling *req, char *err,
                     size_t errlen);
};

struct sensor {
    const struct sensor_backend *backend;
    void *impl;
    unsigned rail_count;
    struct sensor_rail rails[SENSOR_MAX_RAILS];
    struct sensor_sampling asked; /* what the configuration asked for */
    struct sensor_sampling got;   /* what the chip/driver/model actually runs with */
    bool simulated;               /* values are not from a physical sensor */
    int board_input_rail;         /* index into rails, or -1 when the board has none */
    bool board_input_is_sum;      /* no input rail: total = sum of rails, and say so */
    char description[160];        /* e.g. "simulated INA3221-like sensor driven by /proc/stat" */
};

/*
 * Opens the backend called `name`, or with name "auto" the best one that works,
 * logging each one tried and why it was or was not taken. *out is heap-allocated.
 * Returns 0, or -1 with the reason in err.
 */
int sensor_open(const char *name, const struct sensor_options *opt, struct sensor **out,
                char *err, size_t errlen);
int sensor_read(struct sensor *s, struct sensor_sample *out, char *err, size_t errlen);
/* Restores the found configuration and frees s. NULL is allowed. */
void sensor_close(struct sensor *s);

/* Names of the backends in this build, NULL-terminated, in "auto" preference order. */
const char *const *sensor_backend_names(void);
/* Index of the rail whose name matches, or -1. */
int sensor_rail_index(const struct sensor *s, const char *rail_name);

struct board;
/*
 * Marks the board-input rail among s->rails: the board table's input rail
 * (boards.h), else a rail labelled VDD_IN or POM_5V_IN; a board without one
 * (AGX Orin, AGX Xavier) sets board_input_is_sum. For backends that find their
 * rails by label (hwmon, iio). b may be NULL (board not in the table).
 */
void sensor_set_board_input(struct sensor *s, const struct board *b);

/* Defaults used by the daemon's configuration table. */
#define SENSOR_DEFAULT_PERIOD_US 1000u
#define SENSOR_DEFAULT_SIM_IDLE_MW 4500.0
#define SENSOR_DEFAULT_SIM_DYNAMIC_MW 6000.0
#define SENSOR_DEFAULT_SIM_NOISE_MW 20.0
#define SENSOR_DEFAULT_SIM_TAU_US 5000u

#endif
