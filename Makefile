# Thin wrapper: the README's two commands.
#   make run    install build deps if missing, build (Release), run with defaults
#   make check  install test deps if missing, build with ASan/UBSan + fuzzers, run every test
#   make deb    install packaging deps if missing, build the .deb files into dist/
BUILD      ?= build
TEST_BUILD ?= build-test
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: run build check test-build deps test-deps deb deb-deps clean

run: build
	./$(BUILD)/certstream-server $(ARGS)

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DCERTSTREAM_TESTS=OFF
	cmake --build $(BUILD) -j $(JOBS)

check: test-build
	cd $(TEST_BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 900

test-build: test-deps
	CC=clang cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCERTSTREAM_SANITIZE=ON -DCERTSTREAM_FUZZ=ON
	cmake --build $(TEST_BUILD) -j $(JOBS)

deb: deb-deps
	sh packaging/build-deb.sh $(CURDIR)/dist

deps:
	sh packaging/install-deps.sh build

test-deps:
	sh packaging/install-deps.sh test

deb-deps:
	sh packaging/install-deps.sh deb

clean:
	rm -rf $(BUILD) $(TEST_BUILD) build-deb dist
