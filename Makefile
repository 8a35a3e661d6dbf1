# Belay: the two commands a newcomer needs are `make run` and `make test`.
# Both install what is missing (Debian packages; root or sudo), then build.

SWIFT ?= $(shell command -v swift 2>/dev/null || echo /opt/swift/usr/bin/swift)
DEBIAN_PACKAGES := libsodium-dev libsqlite3-dev libqrencode-dev pkg-config python3-pip systemd postgresql
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The interop check uses an independent Noise implementation from PyPI.
PYTHON_PACKAGES := noiseprotocol==0.3.1

.PHONY: all deps build run test lint format fuzz bench bench-abuse clean

all: build

deps:
	@missing=""; \
	for p in $(DEBIAN_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "make: installing$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi
	@python3 -c 'import noise' 2>/dev/null || python3 -m pip install -q --disable-pip-version-check $(PYTHON_PACKAGES) 2>/dev/null \
	  || python3 -m pip install -q --disable-pip-version-check --break-system-packages $(PYTHON_PACKAGES)
	@test -x "$(SWIFT)" || { echo "make: no Swift toolchain found; install Swift 6 and put swift on PATH"; exit 1; }

build: deps
	$(SWIFT) build

# Starts the relay on its built-in configuration and prints its address (belay://HOST:PORT/#KEY).
# State lives in ~/.local/state/belayd; Ctrl-C stops it gracefully.
run: build
	@echo "make: starting belayd; the line below is the relay address clients need"
	.build/debug/belayd run

# Formatting is the tool's job (.swift-format): `make format` applies it, and `make test` fails on
# anything it would change.
lint:
	$(SWIFT) format lint --strict --recursive Sources Tests Package.swift

format:
	$(SWIFT) format format --in-place --recursive Sources Tests Package.swift

test: deps lint
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	# The relay suite again on PostgreSQL (a throwaway server the tests start under .build/pg-test).
	BELAY_RELAY_TEST_STORE=postgres $(SWIFT) test --skip-build --filter BelayRelayTests
	python3 Tests/interop/noise_interop.py .build/debug/belayd
	bash systemd/check.sh .build/debug/belayd .build/debug/belay

# Release build, then 50 sender/receiver pairs x 2,000 messages of 1 KiB against a real belayd.
# STORE=postgres runs the relay on a throwaway PostgreSQL server instead of SQLite.
STORE ?= sqlite
BENCH_ARGS := --pairs 50 --messages 2000 --size 1024 --window 10
bench: deps
	$(SWIFT) build -c release
ifeq ($(STORE),postgres)
	@url=$$(sh Tests/Support/pg-throwaway.sh start .build/pg-bench) || exit 1; \
	  BELAYD_STORE=$$url .build/release/belay-bench $(BENCH_ARGS); rc=$$?; \
	  sh Tests/Support/pg-throwaway.sh stop .build/pg-bench; exit $$rc
else
	.build/release/belay-bench $(BENCH_ARGS)
endif

# Release build, then the relay's RSS after 10k, 50k and 100k connect-and-close cycles of each
# kind (a fresh relay each run), and a client's PING latency while 127.0.0.3 attacks the relay.
bench-abuse: deps
	$(SWIFT) build -c release
	.build/release/belay-bench --churn 10000
	.build/release/belay-bench --churn 50000
	.build/release/belay-bench --churn 100000
	.build/release/belay-bench --abuse

clean:
	rm -rf .build

# Every parser under libFuzzer with AddressSanitizer (not in CI): FUZZ_SECONDS each, a corpus
# per target in .fuzz/corpus, and anything that crashes in .fuzz/crashes (keep it as a
# regression test: Tests/Fuzz/crashers/TARGET/, replayed by `make test`).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := frame bundle command reply noise address config invitation group introduction notice request
fuzz: deps
	$(SWIFT) build -c release --product belay-fuzz --build-path .build-fuzz \
	  -Xswiftc -sanitize=fuzzer,address -Xswiftc -DBELAY_FUZZ -Xswiftc -parse-as-library
	@mkdir -p .fuzz/crashes
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p .fuzz/corpus/$$t; echo "make: fuzzing $$t for $(FUZZ_SECONDS) s"; \
	  BELAY_FUZZ_TARGET=$$t .build-fuzz/release/belay-fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=70000 \
	    -artifact_prefix=.fuzz/crashes/$$t- .fuzz/corpus/$$t 2>&1 | grep -E '^(#[0-9]+ +DONE|Done|==[0-9]+==|SUMMARY)' || exit 1; \
	done

