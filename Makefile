# js-recover: see README.md.  `make` builds, `make test` runs every spec.
PREFIX  ?= /usr/local
CC      ?= cc
BUILD   ?= build
LUA     ?= lua5.4
BUSTED  ?= busted

PKGS     = lua5.4 libcrypto
VERSION  = 0.1.0
OPT     ?= -O2 -g
CFLAGS  := $(OPT) -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Iinclude \
           $(shell pkg-config --cflags $(PKGS)) -DJSR_VERSION='"$(VERSION)"'
LDLIBS  += $(shell pkg-config --libs $(PKGS)) -lhighwayhash -lcrypt

CORE     = buf json metasum fsops changes walk lua_jsr block lua_block
BUILTINS = prepare.lua inspect.lua verify.lua jsr/blocks.lua jsr/prepare.lua jsr/model.lua jsr/cli.lua jsr/table.lua jsr/conf.lua

CORE_OBJ = $(CORE:%=$(BUILD)/%.o)
PIC_OBJ  = $(CORE:%=$(BUILD)/pic/%.o)

all: $(BUILD)/js-recover $(BUILD)/jsr.so $(BUILD)/jscheck

$(BUILD)/%.o: src/%.c include/jsr/*.h | $(BUILD)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/pic/%.o: src/%.c include/jsr/*.h | $(BUILD)
	@mkdir -p $(BUILD)/pic
	$(CC) $(CFLAGS) -fPIC -c $< -o $@

$(BUILD)/builtins.c: scripts/embed.lua $(BUILTINS:%=lua/%) | $(BUILD)
	$(LUA) scripts/embed.lua $@ lua $(BUILTINS)

$(BUILD)/builtins.o: $(BUILD)/builtins.c include/jsr/host.h
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/js-recover: $(CORE_OBJ) $(BUILD)/host.o $(BUILD)/main.o $(BUILD)/builtins.o
	$(CC) $(CFLAGS) $(LDFLAGS) $^ -o $@ $(LDLIBS)

# the same C code as a Lua module, so specs can test primitives directly
$(BUILD)/jsr.so: $(PIC_OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -shared $^ -o $@ $(shell pkg-config --libs libcrypto) -lhighwayhash -lcrypt

# a real NATS client (libnats) that prints what a server serves, for tests
$(BUILD)/jscheck: spec/support/jscheck.c | $(BUILD)
	$(CC) $(CFLAGS) $< -o $@ $(shell pkg-config --cflags --libs libnats)

$(BUILD)/jspub: spec/support/jspub.c | $(BUILD)
	$(CC) $(CFLAGS) $< -o $@ $(shell pkg-config --cflags --libs libnats)

$(BUILD):
	mkdir -p $(BUILD)

# Set-up on a fresh Debian bookworm machine (as root).
DEBS = build-essential pkg-config liblua5.4-dev lua5.4 lua-busted lua-cjson \
       libhighwayhash-dev libssl-dev libcrypt-dev libnats-dev nats-server time
deps:
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(DEBS)

test: all $(BUILD)/jspub
	JSR_BIN=$(abspath $(BUILD))/js-recover JSR_BUILD=$(abspath $(BUILD)) spec/run

# The specs again with every C file built with AddressSanitizer and UBSan.
asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	        LDFLAGS="-fsanitize=address,undefined" all build-asan/jspub
	ASAN_OPTIONS=detect_leaks=0 LD_PRELOAD=$$(gcc -print-file-name=libasan.so):$$(gcc -print-file-name=libubsan.so) \
	JSR_BIN=$(abspath build-asan)/js-recover JSR_BUILD=$(abspath build-asan) spec/run

demo: all
	scripts/demo.sh $(BUILD)/js-recover $(BUILD)/jscheck

# prints figures; targets are compared within one run (see README)
bench: all
	scripts/bench.sh $(BUILD)/js-recover
	scripts/bench-verify.sh $(BUILD)/js-recover

install: $(BUILD)/js-recover
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BUILD)/js-recover $(DESTDIR)$(PREFIX)/bin/js-recover

clean:
	rm -rf build build-asan

.PHONY: all deps test asan demo bench install clean
