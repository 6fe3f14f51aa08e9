# jetprof - one entry point.
#
#   make              bin/jetprofd, bin/jetprof (+ lib/jetprof/libjetprof_cuda.so when CUDA is on)
#   make run          install missing packages, build, start jetprofd on ./var/jetprof.db
#   make test         install missing packages, build, run unit + integration tests
#   make test SAN=1   the same under AddressSanitizer + UBSan (separate tree: build/san)
#   make bench        benchmark programs under bench/ (+ python3-sklearn for the
#                     estimate baseline: scripts/install-deps --bench)
#   make install      PREFIX=/usr/local DESTDIR=
#   make CROSS=aarch64-linux-gnu-   jetprofd, jetprof, unit tests and fixtures for a
#                     Jetson's CPU into build/aarch64 (docs/cross.md)
#   make test-aarch64 that cross build's unit tests under qemu-aarch64-static
#   make clean
#
# Variables: CUDA=auto|0|1 (auto: build the CUDA executor when nvcc is found on PATH
# or in $(CUDA_HOME)/bin), CUDA_HOME=/usr/local/cuda, CUDA_ARCH (nvcc -gencode list,
# default Jetson Orin sm_87 + H100 sm_90 + compute_90 PTX), SAN=0|1, ARGS (extra
# jetprofd flags for make run), CC, CFLAGS, LDFLAGS, CROSS (toolchain prefix, e.g.
# aarch64-linux-gnu-), SYSROOT (for CROSS; default build/<arch>/sysroot).

CC        ?= cc
PREFIX    ?= /usr/local
DESTDIR   ?=
SYSCONFDIR ?= /etc
SAN       ?= 0
CUDA      ?= auto
CUDA_HOME ?= /usr/local/cuda
CUDA_ARCH ?= -gencode arch=compute_87,code=sm_87 -gencode arch=compute_90,code=sm_90 \
             -gencode arch=compute_90,code=compute_90

# ---- cross build (docs/cross.md) ----
# Against an arm64 sysroot of Debian's -dev packages that scripts/install-cross-deps
# makes (libxgboost is not Multi-Arch: same, so multiarch arm64 -dev packages cannot sit
# beside the native ones). No CUDA: the executor plugin is built with nvcc on the board.
# No sanitizers: ASan's shadow memory does not work under qemu-user; the SAN tree runs
# them natively.
CROSS ?=
PKG_CONFIG ?= pkg-config
ifneq ($(CROSS),)
  CROSS_TRIPLET := $(patsubst %-,%,$(CROSS))
  CROSS_ARCH    := $(firstword $(subst -, ,$(CROSS_TRIPLET)))
  SYSROOT       ?= build/$(CROSS_ARCH)/sysroot
  SYSROOT_ABS   := $(abspath $(SYSROOT))
  override SAN  := 0
  override CUDA := 0
  CC            := $(CROSS)gcc --sysroot=$(SYSROOT_ABS)
  AR            := $(CROSS)ar
  # The sysroot's own include and library directories count as system ones, so
  # pkg-config leaves them out as it does /usr/include natively (and their headers
  # stay system headers, outside -Werror).
  PKG_CONFIG    := PKG_CONFIG_LIBDIR=$(SYSROOT_ABS)/usr/lib/$(CROSS_TRIPLET)/pkgconfig:$(SYSROOT_ABS)/usr/share/pkgconfig \
                   PKG_CONFIG_SYSROOT_DIR=$(SYSROOT_ABS) \
                   PKG_CONFIG_SYSTEM_INCLUDE_PATH=$(SYSROOT_ABS)/usr/include:$(SYSROOT_ABS)/usr/include/$(CROSS_TRIPLET) \
                   PKG_CONFIG_SYSTEM_LIBRARY_PATH=$(SYSROOT_ABS)/usr/lib/$(CROSS_TRIPLET):$(SYSROOT_ABS)/lib/$(CROSS_TRIPLET) \
                   pkg-config
endif

ifeq ($(SAN),1)
OUT       := build/san
BINDIR    := build/san/bin
SANFLAGS  := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT       := -O1
else
OUT       := build/default
BINDIR    := bin
SANFLAGS  :=
OPT       := -O2
endif
ifneq ($(CROSS),)
OUT       := build/$(CROSS_ARCH)
BINDIR    := build/$(CROSS_ARCH)/bin
endif
OBJ := $(OUT)/obj

# pkg-config may be absent before install-deps has run; keep make usable for `make clean`.
PKGS      := libmicrohttpd sqlite3 jansson inih libsystemd libgpiod
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS  := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
CURL_LIBS := $(shell $(PKG_CONFIG) --libs libcurl jansson sqlite3 2>/dev/null)
CMOCKA_LIBS := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null)

WARN      := -Wall -Wextra -Werror
CFLAGS    ?= $(OPT) -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(SANFLAGS) -MMD -MP -I. $(PKG_CFLAGS)
ALL_LDFLAGS := $(LDFLAGS) $(SANFLAGS)
# libi2c (i2c-tools) and libxgboost have no pkg-config file. XGBoost is only
# used to train (predict/train.c, in jetprofd); predictions evaluate the trees in C.
SYS_LIBS  := -li2c -lxgboost -lpthread -ldl -lm

# ---- CUDA detection ----
NVCC := $(shell command -v nvcc 2>/dev/null || { test -x $(CUDA_HOME)/bin/nvcc && echo $(CUDA_HOME)/bin/nvcc; })
ifeq ($(CUDA),auto)
  BUILD_CUDA := $(if $(NVCC),1,0)
else
  BUILD_CUDA := $(CUDA)
endif
ifeq ($(SAN),1)
  BUILD_CUDA := 0   # sanitizers do not cover nvcc code; the SAN tree uses the CPU executor
endif
CUDA_LIB  := $(OUT)/lib/jetprof/libjetprof_cuda.so
ifeq ($(SAN),0)
  CUDA_LIB := lib/jetprof/libjetprof_cuda.so
endif
ifneq ($(CROSS),)
  # never the host's plugin (make install of a cross build)
  CUDA_LIB := $(OUT)/lib/jetprof/libjetprof_cuda.so
endif

# ---- sources, one archive per module (dependency direction of DESIGN.md) ----
COMMON_SRC  := $(wildcard common/*.c)
SENSORS_SRC := $(wildcard sensors/*.c)
CUDAKERN_SRC := cudakern/catalog.c cudakern/kernel_data.c cudakern/exec.c cudakern/exec_cpu.c \
                cudakern/sweep.c
DB_SRC      := $(wildcard db/*.c)
PREDICT_SRC := $(wildcard predict/*.c)
DAEMON_SRC  := $(filter-out daemon/main.c,$(wildcard daemon/*.c))
CLIENT_SRC  := $(wildcard client/*.c)

objs = $(patsubst %.c,$(OBJ)/%.o,$(1))
LIB_COMMON   := $(OUT)/libcommon.a
LIB_SENSORS  := $(OUT)/libsensors.a
LIB_CUDAKERN := $(OUT)/libcudakern.a
LIB_DB       := $(OUT)/libdb.a
LIB_PREDICT  := $(OUT)/libpredict.a
LIB_DAEMON   := $(OUT)/libdaemon.a
MODULE_LIBS  := $(LIB_DAEMON) $(LIB_DB) $(LIB_SENSORS) $(LIB_CUDAKERN) $(LIB_COMMON)
ifneq ($(strip $(PREDICT_SRC)),)
  MODULE_LIBS := $(LIB_DAEMON) $(LIB_PREDICT) $(LIB_DB) $(LIB_SENSORS) $(LIB_CUDAKERN) $(LIB_COMMON)
endif

JETPROFD := $(BINDIR)/jetprofd
JETPROF  := $(BINDIR)/jetprof

UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(patsubst tests/unit/%.c,$(OUT)/tests/%,$(UNIT_SRC))
BENCH_SRC  := $(wildcard bench/*.c)
BENCH_BINS := $(patsubst bench/%.c,$(OUT)/bench/%,$(BENCH_SRC))

.PHONY: all run test unit integration bench install uninstall clean deps cuda check-cuda test-gpu \
        test-aarch64
all: $(JETPROFD) $(JETPROF) $(if $(filter 1,$(BUILD_CUDA)),$(CUDA_LIB))

deps:
	@scripts/install-deps

$(OBJ)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LIB_COMMON): $(call objs,$(COMMON_SRC))
$(LIB_SENSORS): $(call objs,$(SENSORS_SRC))
$(LIB_CUDAKERN): $(call objs,$(CUDAKERN_SRC))
$(LIB_DB): $(call objs,$(DB_SRC))
$(LIB_PREDICT): $(call objs,$(PREDICT_SRC))
$(LIB_DAEMON): $(call objs,$(DAEMON_SRC))
$(OUT)/%.a:
	@mkdir -p $(dir $@)
	@rm -f $@
	$(AR) rcs $@ $^

$(JETPROFD): $(OBJ)/daemon/main.o $(MODULE_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) $(SYS_LIBS)

CLIENT_LIBS := $(if $(strip $(PREDICT_SRC)),$(LIB_PREDICT)) $(LIB_CUDAKERN) $(LIB_COMMON)
$(JETPROF): $(call objs,$(CLIENT_SRC)) $(CLIENT_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CURL_LIBS) $(SYS_LIBS)

# ---- CUDA executor plugin (dlopen'd by the executor loader; jetprofd links no CUDA) ----
NVCCFLAGS := -std=c++17 -O2 -Xcompiler -fPIC,-Wall,-Wextra,-Werror -I. $(CUDA_ARCH)
$(CUDA_LIB): cudakern/exec_cuda.cu cudakern/catalog.c cudakern/kernel_data.c cudakern/*.h
	@mkdir -p $(dir $@) $(OBJ)/cudakern/plugin
	$(CC) -std=c11 -D_GNU_SOURCE $(WARN) -O2 -fPIC -I. -c cudakern/catalog.c -o $(OBJ)/cudakern/plugin/catalog.o
	$(CC) -std=c11 -D_GNU_SOURCE $(WARN) -O2 -fPIC -I. -c cudakern/kernel_data.c -o $(OBJ)/cudakern/plugin/kernel_data.o
	$(NVCC) $(NVCCFLAGS) -shared -o $@ cudakern/exec_cuda.cu \
	    $(OBJ)/cudakern/plugin/catalog.o $(OBJ)/cudakern/plugin/kernel_data.o -lcublasLt
cuda: $(CUDA_LIB)

# ---- make test-gpu: the CUDA executor on a real GPU (docs/gpu-testing.md) ----
# 1. tests/gpu/test_gpu.c: every kernel against the CPU oracle, then the worker
#    process's failure paths on CUDA (it is its own worker program: daemon/worker.c
#    linked from the daemon archive, which pulls in worker.o and what it needs only);
# 2. tests/gpu/test_daemon_gpu.sh: jetprofd with --executor cuda --sensor nvml, a full
#    measurement and the same failure paths over HTTP.
# Builds anywhere; where no GPU, plugin or NVML can be used each part prints
# "SKIP: <reason>" and exits 0.
GPU_TEST := $(OUT)/gpu-tests/test_gpu
$(GPU_TEST): tests/gpu/test_gpu.c $(LIB_DAEMON) $(LIB_CUDAKERN) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(LIB_DAEMON) $(LIB_CUDAKERN) $(LIB_COMMON) \
	    -lpthread -ldl -lm

test-gpu:
	@$(MAKE) --no-print-directory $(GPU_TEST) $(JETPROFD) $(JETPROF) \
	    $(if $(filter 1,$(BUILD_CUDA)),$(CUDA_LIB)) SAN=$(SAN)
	$(GPU_TEST) $(CUDA_LIB)
	JETPROFD=$(JETPROFD) JETPROF=$(JETPROF) CUDA_LIB=$(CUDA_LIB) SAN=$(SAN) \
	    tests/gpu/test_daemon_gpu.sh

# ---- tests ----
# tests/unit/test_<module>_*.c links only <module> and what DESIGN.md lets it depend on,
# so a test cannot reach across the dependency direction.
TEST_LIBS_common   := $(LIB_COMMON)
TEST_LIBS_sensors  := $(LIB_SENSORS) $(LIB_COMMON)
TEST_LIBS_cudakern := $(LIB_CUDAKERN) $(LIB_COMMON)
TEST_LIBS_db       := $(LIB_DB) $(LIB_COMMON)
TEST_LIBS_predict  := $(LIB_PREDICT) $(LIB_CUDAKERN) $(LIB_COMMON)
TEST_LIBS_daemon   := $(MODULE_LIBS)
test_module = $(word 2,$(subst _, ,$(notdir $(1))))
.SECONDEXPANSION:
$(OUT)/tests/%: tests/unit/%.c $$(TEST_LIBS_$$(call test_module,$$*))
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(TEST_LIBS_$(call test_module,$*)) $(PKG_LIBS) $(CMOCKA_LIBS) $(SYS_LIBS)

# Shared-object test doubles (e.g. a fake libnvidia-ml): tests/fixtures/<name>.c ->
# $(OUT)/fixtures/lib<name>.so; a test finds them at dirname(argv[0])/../fixtures/.
FIXTURE_SRC  := $(wildcard tests/fixtures/*.c)
FIXTURE_LIBS := $(patsubst tests/fixtures/%.c,$(OUT)/fixtures/lib%.so,$(FIXTURE_SRC))
$(OUT)/fixtures/lib%.so: tests/fixtures/%.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE $(WARN) -O1 -g -fPIC -shared -I. -o $@ $<

# A cross build is only useful with its tests (nothing here can run jetprofd for the
# board), so its default goal builds them too. The sysroot is made first when missing:
# it is included as a makefile (its stamp is a comment) so make starts again with
# pkg-config able to see it.
ifneq ($(CROSS),)
all: $(UNIT_BINS) $(FIXTURE_LIBS)
ifeq ($(filter clean,$(MAKECMDGOALS)),)
include $(SYSROOT)/.jetprof-sysroot
endif
$(SYSROOT)/.jetprof-sysroot:
	@scripts/install-deps --cross $(CROSS_ARCH) --sysroot $(SYSROOT)
endif

test: deps
	@$(MAKE) --no-print-directory all SAN=$(SAN)
	@$(MAKE) --no-print-directory $(UNIT_BINS) $(FIXTURE_LIBS) SAN=$(SAN)
	@JETPROFD=$(JETPROFD) JETPROF=$(JETPROF) UNIT_DIR=$(OUT)/tests SAN=$(SAN) tests/run-tests

unit: all $(UNIT_BINS) $(FIXTURE_LIBS)
	@JETPROFD=$(JETPROFD) JETPROF=$(JETPROF) UNIT_DIR=$(OUT)/tests SAN=$(SAN) tests/run-tests --unit-only

# ---- make test-aarch64: the unit tests for the Jetson's CPU, under qemu-user ----
# qemu-aarch64-static is named explicitly (CI has no binfmt_misc); -L makes the
# sysroot the root for the dynamic loader and the libraries. Tests that need what
# qemu-user cannot do skip with a reason (docs/cross.md).
A64_SYSROOT := $(if $(SYSROOT),$(SYSROOT),build/aarch64/sysroot)
test-aarch64:
	@scripts/install-deps --cross aarch64 --sysroot $(A64_SYSROOT)
	@$(MAKE) --no-print-directory all CROSS=aarch64-linux-gnu- SYSROOT=$(A64_SYSROOT)
	@TEST_WRAPPER="qemu-aarch64-static -L $(abspath $(A64_SYSROOT))" UNIT_DIR=build/aarch64/tests \
	    JETPROFD=build/aarch64/bin/jetprofd JETPROF=build/aarch64/bin/jetprof \
	    tests/run-tests --unit-only

# ---- benchmarks ----
$(OUT)/bench/%: bench/%.c $(MODULE_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(MODULE_LIBS) $(PKG_LIBS) $(SYS_LIBS)

# bench_estimate needs a daemon with a dataset and trained models:
# bench/bench_estimate.sh sets that up, runs it and the scikit-learn baseline
# (python3-sklearn, installed only here by install-deps --bench).
# bench/bench_validation.sh: jetprof validate on graphs with parallel branches
# (graph-level MAPE and Kendall tau, merging on and off).
bench:
	@scripts/install-deps --bench
	@$(MAKE) --no-print-directory all $(BENCH_BINS)
	@for b in $(filter-out %/bench_estimate,$(BENCH_BINS)); do echo "== $$b"; $$b || exit 1; done
	@echo "== bench/bench_estimate.sh"
	@JETPROFD=$(JETPROFD) BENCH_ESTIMATE=$(OUT)/bench/bench_estimate bench/bench_estimate.sh
	@echo "== bench/bench_validation.sh"
	@JETPROFD=$(JETPROFD) JETPROF=$(JETPROF) bench/bench_validation.sh

# ---- run ----
run: deps
	@$(MAKE) --no-print-directory all
	@mkdir -p var
	$(JETPROFD) --config none --db var/jetprof.db $(ARGS)

# ---- install ----
# The installed layout (docs/systemd.md). SYSCONFDIR stays /etc: the unit and the
# tmpfiles entry name /etc/jetprof. The udev rule goes to /etc/udev/rules.d unless
# PREFIX=/usr: udev before systemd 246 (JetPack 5: 245) does not read /usr/local/lib.
# The installed configuration listens on all interfaces with auth on: a bearer
# token is created once (random, mode 0600) and never overwritten, like the config.
UNITDIR      ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR  ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR  ?= $(PREFIX)/lib/tmpfiles.d
UDEVRULESDIR ?= $(if $(filter /usr,$(PREFIX)),/usr/lib/udev/rules.d,/etc/udev/rules.d)
MANDIR       ?= $(PREFIX)/share/man

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(SYSCONFDIR)/jetprof
	install -m 0755 $(JETPROFD) $(JETPROF) $(DESTDIR)$(PREFIX)/bin/
	if [ -f $(CUDA_LIB) ]; then install -d $(DESTDIR)$(PREFIX)/lib/jetprof && \
	    install -m 0755 $(CUDA_LIB) $(DESTDIR)$(PREFIX)/lib/jetprof/; fi
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(UDEVRULESDIR)
	sed 's|@BINDIR@|$(PREFIX)/bin|g' systemd/jetprofd.service > $(DESTDIR)$(UNITDIR)/jetprofd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/jetprofd.service
	install -m 0644 systemd/jetprof.sysusers $(DESTDIR)$(SYSUSERSDIR)/jetprof.conf
	install -m 0644 systemd/jetprof.tmpfiles $(DESTDIR)$(TMPFILESDIR)/jetprof.conf
	install -m 0644 systemd/90-jetprof.rules $(DESTDIR)$(UDEVRULESDIR)/90-jetprof.rules
	if [ -f docs/jetprof.1 ]; then install -d $(DESTDIR)$(MANDIR)/man1 && \
	    install -m 0644 docs/jetprof.1 $(DESTDIR)$(MANDIR)/man1/jetprof.1; fi
	if [ ! -f $(DESTDIR)$(SYSCONFDIR)/jetprof/jetprofd.conf ]; then \
	    sed -e 's|^#token_file =$$|token_file = $(SYSCONFDIR)/jetprof/token|' \
	        -e 's|^#listen = 127.0.0.1:9740$$|listen = 0.0.0.0:9740|' systemd/jetprofd.conf \
	        > $(DESTDIR)$(SYSCONFDIR)/jetprof/jetprofd.conf && \
	    chmod 0644 $(DESTDIR)$(SYSCONFDIR)/jetprof/jetprofd.conf; fi
	if [ ! -f $(DESTDIR)$(SYSCONFDIR)/jetprof/token ]; then \
	    (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > $(DESTDIR)$(SYSCONFDIR)/jetprof/token && \
	     echo >> $(DESTDIR)$(SYSCONFDIR)/jetprof/token); fi

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/jetprofd $(DESTDIR)$(PREFIX)/bin/jetprof
	rm -rf $(DESTDIR)$(PREFIX)/lib/jetprof
	rm -f $(DESTDIR)$(UNITDIR)/jetprofd.service $(DESTDIR)$(SYSUSERSDIR)/jetprof.conf \
	    $(DESTDIR)$(TMPFILESDIR)/jetprof.conf $(DESTDIR)$(UDEVRULESDIR)/90-jetprof.rules \
	    $(DESTDIR)$(MANDIR)/man1/jetprof.1
	@echo "left $(DESTDIR)$(SYSCONFDIR)/jetprof (configuration, token), /var/lib/jetprof and the jetprof user in place"

clean:
	rm -rf build bin lib

-include $(shell find build -name sysroot -prune -o -name '*.d' -type f -print 2>/dev/null)
