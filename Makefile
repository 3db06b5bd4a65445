# relive - the two commands of the README, and the rest.
#   make demo    patch a running example server live
#   make test    build and run the whole test suite
#   make bench   run the benchmarks
# The build itself is meson + ninja in build/ (BUILD=... to change).

BUILD ?= build
PYTHON ?= /usr/bin/python3
MESON_OPTS ?= -Dwerror=true

.PHONY: all deps demo test unit scenarios bench clean install

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

deps:
	@./scripts/deps.sh

$(BUILD)/build.ninja: | deps
	meson setup $(BUILD) $(MESON_OPTS)

demo: all
	RELIVE_BUILD=$(BUILD) ./scripts/demo.sh

test: all
	./scripts/test.sh $(BUILD)

bench: all
	./scripts/bench.sh $(BUILD)

install: all
	meson install -C $(BUILD)

clean:
	rm -rf $(BUILD)
