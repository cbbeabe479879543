# Thin wrapper: the README's commands.
#   make run    install build deps if missing, build (Release), run with defaults
#   make check  install test deps if missing, build with ASan/UBSan + fuzzers, run every test;
#               also build the gcc Release tree (-Werror with the other compiler;
#               its tests are not run: one run of the suite is enough)
#   make deb    install packaging deps if missing, build the .deb files into dist/
BUILD      ?= build
TEST_BUILD ?= build-test
GCC_BUILD  ?= build-gcc
# The suite runs with TMPDIR set to this fresh folder, which must be empty
# afterwards: every test removes what it creates.
TEST_TMP   ?= $(abspath $(TEST_BUILD))/tmp
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: run build check test-build gcc-build deps test-deps deb deb-deps clean

run: build
	./$(BUILD)/certstream-server $(ARGS)

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DCERTSTREAM_TESTS=OFF
	cmake --build $(BUILD) -j $(JOBS)

check: test-build gcc-build
	rm -rf $(TEST_TMP) && mkdir -p $(TEST_TMP)
	cd $(TEST_BUILD) && TMPDIR=$(TEST_TMP) ctest --output-on-failure -j $(JOBS) --timeout 900
	@left=$$(ls -A $(TEST_TMP)); if [ -n "$$left" ]; then \
	  echo "make check: the tests left this behind in $(TEST_TMP):" >&2; echo "$$left" >&2; exit 1; fi
	rmdir $(TEST_TMP)

test-build: test-deps
	CC=clang cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCERTSTREAM_SANITIZE=ON -DCERTSTREAM_FUZZ=ON
	cmake --build $(TEST_BUILD) -j $(JOBS)

gcc-build: deps
	CC=gcc cmake -S . -B $(GCC_BUILD) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(GCC_BUILD) -j $(JOBS)

deb: deb-deps
	sh packaging/build-deb.sh $(CURDIR)/dist

deps:
	sh packaging/install-deps.sh build

test-deps:
	sh packaging/install-deps.sh test

deb-deps:
	sh packaging/install-deps.sh deb

clean:
	rm -rf $(BUILD) $(TEST_BUILD) $(GCC_BUILD) build-deb dist
