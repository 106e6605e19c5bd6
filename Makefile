# js-recover: see README.md.  `make` builds, `make test` runs every spec.
PREFIX  ?= /usr/local
CC      ?= cc
BUILD   ?= build
LUA     ?= lua5.4
BUSTED  ?= busted

PKGS     = lua5.4 libcrypto libsodium
VERSION  = 0.1.0
OPT     ?= -O2 -g
# pkg-config runs when a recipe first needs its answer, not when make reads
# this file: `make deps demo` on a fresh machine installs the packages
# before the first compile asks for their flags (then the answer is kept).
PKG_CFLAGS = $(eval PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS)))$(PKG_CFLAGS)
PKG_LIBS   = $(eval PKG_LIBS := $(shell pkg-config --libs $(PKGS)))$(PKG_LIBS)
CFLAGS   = $(OPT) -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Iinclude \
           $(PKG_CFLAGS) -DJSR_VERSION='"$(VERSION)"'
LDLIBS   = $(PKG_LIBS) -lhighwayhash -lcrypt -lnats

CORE     = buf lua_bind json lua_json metasum os fsops changes walk lua_jsr block block_cmp s2stream lua_block indexdb lua_indexdb journal undo guard natsconf lua_undo crypto lua_crypto s2 lua_raft lua_salvage tar s2write lua_snapshot lua_nats lua_operator lua_layout
# every script under lua/ is built in
BUILTINS = $(patsubst lua/%,%,$(sort $(wildcard lua/*.lua lua/jsr/*.lua)))

CORE_OBJ = $(CORE:%=$(BUILD)/%.o)
PIC_OBJ  = $(CORE:%=$(BUILD)/pic/%.o)

all: $(BUILD)/js-recover $(BUILD)/jsr.so $(BUILD)/jscheck

$(BUILD)/%.o: src/%.c include/jsr/*.h | $(BUILD)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/pic/%.o: src/%.c include/jsr/*.h | $(BUILD)
	@mkdir -p $(BUILD)/pic
	$(CC) $(CFLAGS) -fPIC -c $< -o $@

# regenerated every time (it is quick) and replaced only when it differs, so
# a script added to or removed from lua/ is never missed
$(BUILD)/builtins.c: FORCE | $(BUILD)
	@$(LUA) scripts/embed.lua $@.tmp lua $(BUILTINS)
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; echo "embedded: $(BUILTINS)"; fi

$(BUILD)/builtins.o: $(BUILD)/builtins.c include/jsr/host.h
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/js-recover: $(CORE_OBJ) $(BUILD)/host.o $(BUILD)/main.o $(BUILD)/builtins.o
	$(CC) $(CFLAGS) $(LDFLAGS) $^ -o $@ $(LDLIBS)

# the same C code as a Lua module, so specs can test primitives directly
$(BUILD)/jsr.so: $(PIC_OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -shared $^ -o $@ $(shell pkg-config --libs libcrypto libsodium) -lhighwayhash -lcrypt -lnats

# a real NATS client (libnats) that prints what a server serves, for tests
$(BUILD)/jscheck: spec/support/jscheck.c spec/support/jsutil.c spec/support/jsutil.h | $(BUILD)
	$(CC) $(CFLAGS) $(filter %.c,$^) -o $@ $(shell pkg-config --cflags --libs libnats libcrypto)

$(BUILD)/jspub: spec/support/jspub.c spec/support/jsutil.c spec/support/jsutil.h | $(BUILD)
	$(CC) $(CFLAGS) $(filter %.c,$^) -o $@ $(shell pkg-config --cflags --libs libnats libcrypto)

# the quorum-loss drill's workload, recorder and traffic (spec/support/drill.lua)
$(BUILD)/jsload: spec/support/jsload.c spec/support/jsutil.c spec/support/jsutil.h | $(BUILD)
	$(CC) $(CFLAGS) $(filter %.c,$^) -o $@ $(shell pkg-config --cflags --libs libnats libcrypto) -lpthread -lm

$(BUILD):
	mkdir -p $(BUILD)

# Set-up on a fresh Debian bookworm machine (as root).
DEBS = build-essential clang libclang-rt-dev valgrind pkg-config liblua5.4-dev lua5.4 lua-busted \
       libhighwayhash-dev libssl-dev libcrypt-dev libsodium-dev libnats-dev nats-server time
deps:
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(DEBS)
	@$(MAKE) --no-print-directory servers || \
	    echo "make servers failed (above): the specs skip the versions it did not build, and say so"

# The pinned nats-server releases and nats CLI of scripts/servers.env, built
# with Go into ~/.cache/js-recover/servers (kept across clones); without Go
# it says which versions the specs will skip.
servers:
	@sh scripts/build-servers.sh

test: all $(BUILD)/jspub $(BUILD)/jsload
	@sh scripts/build-servers.sh || echo "make servers failed (above): the specs skip the versions it did not build"
	JSR_BIN=$(abspath $(BUILD))/js-recover JSR_BUILD=$(abspath $(BUILD)) spec/run

# The specs again with every C file built with AddressSanitizer and UBSan.
asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	        LDFLAGS="-fsanitize=address,undefined" all build-asan/jspub build-asan/jsload
	ASAN_OPTIONS=detect_leaks=0 LD_PRELOAD=$$(gcc -print-file-name=libasan.so):$$(gcc -print-file-name=libubsan.so) \
	JSR_BIN=$(abspath build-asan)/js-recover JSR_BUILD=$(abspath build-asan) spec/run

# Coverage-guided fuzzing (clang's libFuzzer, with ASan+UBSan) of every
# parser that reads a store (spec/fuzz/README): FUZZ_SECONDS per target,
# one target at a time; FUZZ_TARGETS picks some.  Seeds:
# spec/fuzz/corpus/<target>; new inputs go to build-fuzz/corpus/<target>
# (merge with -merge=1 to keep them).  A crash stops the run, exit 1, with
# the input in build-fuzz/crash-* and the log in build-fuzz/<target>.log.
FUZZ_SECONDS ?= 200
FUZZ_TARGETS ?= json meta block s2 s2stream index indexdb raft snapshot odat
FUZZ_CFLAGS = -g -O1 -std=c11 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
              -Iinclude $(PKG_CFLAGS)
FUZZ_LIBS = $(PKG_LIBS) -lhighwayhash -lcrypt -lnats
FUZZ_CORE = $(CORE:%=src/%.c)
# targets that run the Lua parsers load lua/jsr/*.lua from this tree
FUZZ_LUA = spec/fuzz/fuzz_lua.c -DFUZZ_LUA_DIR='"$(CURDIR)/lua"'
build-fuzz/json_fuzz: spec/fuzz/json_fuzz.c $(FUZZ_CORE) include/jsr/*.h
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) spec/fuzz/json_fuzz.c $(FUZZ_CORE) -o $@ $(FUZZ_LIBS)
build-fuzz/meta_fuzz: spec/fuzz/meta_fuzz.c $(FUZZ_CORE) include/jsr/*.h
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) spec/fuzz/meta_fuzz.c $(FUZZ_CORE) -o $@ $(FUZZ_LIBS)
build-fuzz/block_fuzz: spec/fuzz/block_fuzz.c src/block.c src/block_cmp.c src/s2stream.c src/s2.c src/metasum.c src/os.c src/fsops.c src/crypto.c include/jsr/*.h
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) spec/fuzz/block_fuzz.c src/block.c src/block_cmp.c src/s2stream.c src/s2.c src/metasum.c src/os.c src/fsops.c src/crypto.c -o $@ $(FUZZ_LIBS)
build-fuzz/s2_fuzz: spec/fuzz/s2_fuzz.c src/s2.c include/jsr/s2.h
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) spec/fuzz/s2_fuzz.c src/s2.c -o $@
build-fuzz/index_fuzz: spec/fuzz/index_fuzz.c src/block.c src/block_cmp.c src/s2stream.c src/s2.c src/metasum.c src/os.c src/fsops.c src/crypto.c include/jsr/*.h
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) spec/fuzz/index_fuzz.c src/block.c src/block_cmp.c src/s2stream.c src/s2.c src/metasum.c src/os.c src/fsops.c src/crypto.c -o $@ $(FUZZ_LIBS)
build-fuzz/indexdb_fuzz: spec/fuzz/indexdb_fuzz.c src/indexdb.c src/metasum.c src/os.c src/fsops.c include/jsr/*.h
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) spec/fuzz/indexdb_fuzz.c src/indexdb.c src/metasum.c src/os.c src/fsops.c -o $@ $(FUZZ_LIBS)
build-fuzz/s2stream_fuzz: spec/fuzz/s2stream_fuzz.c src/block.c src/block_cmp.c src/s2stream.c src/s2.c src/metasum.c src/os.c src/fsops.c src/crypto.c include/jsr/*.h
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) spec/fuzz/s2stream_fuzz.c src/block.c src/block_cmp.c src/s2stream.c src/s2.c src/metasum.c src/os.c src/fsops.c src/crypto.c -o $@ $(FUZZ_LIBS)
build-fuzz/%_fuzz: spec/fuzz/%_fuzz.c spec/fuzz/fuzz_lua.c spec/fuzz/fuzz_lua.h $(FUZZ_CORE) include/jsr/*.h
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) $< $(FUZZ_LUA) $(FUZZ_CORE) -o $@ $(FUZZ_LIBS)
fuzz: $(FUZZ_TARGETS:%=build-fuzz/%_fuzz)
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p build-fuzz/corpus/$$t; \
	    echo "== $$t: $(FUZZ_SECONDS) s"; \
	    build-fuzz/$${t}_fuzz -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	        -artifact_prefix=build-fuzz/ build-fuzz/corpus/$$t spec/fuzz/corpus/$$t \
	        > build-fuzz/$$t.log 2>&1; rc=$$?; \
	    grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec|ERROR|SUMMARY|Done' \
	        build-fuzz/$$t.log; \
	    [ $$rc -eq 0 ] || { echo "== $$t: exit $$rc (build-fuzz/$$t.log)"; exit 1; }; \
	done

# The specs again with every js-recover run under valgrind memcheck: any
# error or definite/indirect leak makes that run exit 99, failing its spec.
valgrind: all $(BUILD)/jspub $(BUILD)/jsload
	printf '#!/bin/sh\nexec valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect %s "$$@"\n' \
	    $(abspath $(BUILD))/js-recover > $(BUILD)/js-recover-valgrind
	chmod +x $(BUILD)/js-recover-valgrind
	JSR_BIN=$(abspath $(BUILD))/js-recover-valgrind JSR_BUILD=$(abspath $(BUILD)) spec/run

# The quorum-loss drill on real 3-node clusters: every variant (survivor the
# meta leader or a follower, stopped with SIGTERM or SIGKILL; plaintext, and
# encrypted with chacha and aes) with the full workload, one scorecard each;
# exit 1 unless every one is 100%.
# `make drill-load DRILL_RUNS=20` measures acknowledged messages and acks
# under load instead (README "Quorum-loss drill").
DRILL_RUNS ?= 20
drill: all $(BUILD)/jsload
	JSR_BIN=$(abspath $(BUILD))/js-recover JSR_BUILD=$(abspath $(BUILD)) \
	LUA_PATH="lua/?.lua;./?.lua;;" LUA_CPATH="$(BUILD)/?.so;;" $(LUA) scripts/drill.lua variants
drill-load: all $(BUILD)/jsload
	JSR_BIN=$(abspath $(BUILD))/js-recover JSR_BUILD=$(abspath $(BUILD)) \
	LUA_PATH="lua/?.lua;./?.lua;;" LUA_CPATH="$(BUILD)/?.so;;" $(LUA) scripts/drill.lua load $(DRILL_RUNS)

demo: all
	scripts/demo.sh $(BUILD)/js-recover $(BUILD)/jscheck

# prints figures; targets are compared within one run (see README)
bench: all
	scripts/bench.sh $(BUILD)/js-recover
	scripts/bench-verify.sh $(BUILD)/js-recover
	@$(MAKE) --no-print-directory bench-restore
	@$(MAKE) --no-print-directory bench-scale

# time and peak RSS by number of streams: 1,000 and 10,000
# (BENCH_SCALE_MAX=100000 adds that size; about 1.2 GB of disk)
bench-scale: all
	scripts/bench-scale.sh $(BUILD)/js-recover

# the runbook against `js-recover restore`, into a 3-node cluster
# (BENCH_RESTORE="MiB small-streams", default "1024 1000")
bench-restore: all $(BUILD)/jsload
	JSR_BUILD=$(BUILD) $(LUA) scripts/bench-restore.lua $(BENCH_RESTORE)

install: $(BUILD)/js-recover
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BUILD)/js-recover $(DESTDIR)$(PREFIX)/bin/js-recover

clean:
	rm -rf build build-asan build-fuzz

.PHONY: all deps servers test asan valgrind demo bench bench-restore bench-scale install clean fuzz FORCE drill drill-load
FORCE:
