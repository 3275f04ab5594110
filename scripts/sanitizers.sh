#!/usr/bin/env bash
# Sanitizer and leak runs for greetd. Slow (each builds the package again); CI runs only what its
# time budget allows (see .ci/run), the rest is run by hand before a release.
#
#   scripts/sanitizers.sh asan       # the whole test suite under AddressSanitizer
#   scripts/sanitizers.sh tsan       # the whole test suite under ThreadSanitizer (workers, wakeups)
#   scripts/sanitizers.sh valgrind   # memcheck of a release greetd through a 1,000-request abort storm
#   scripts/sanitizers.sh all        # all three; with no argument, this text
#
# Exit status is non-zero if any run finds a problem in greetd's own code.
set -euo pipefail
cd "$(dirname "$0")/.."

asan() {
    echo "== AddressSanitizer: swift test --sanitize=address"
    # LeakSanitizer also reports the test harness's own leftovers (XCTest, Foundation's Process):
    # we fail only on memory errors, and on leaks whose stacks pass through our modules.
    local log=.build-asan/asan.log
    mkdir -p .build-asan
    set +e
    # Two tests compare resident memory (after 50,000 connections; under a pipelining flood).
    # ASan's quarantine keeps freed memory on purpose, so those figures mean nothing here; they
    # run in the plain suite.
    # scripts/asan.supp passes over one over-read inside Foundation's Process (not our code; see there).
    ASAN_OPTIONS="suppressions=$PWD/scripts/asan.supp${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
        swift test --sanitize=address --scratch-path .build-asan --skip churn --skip pipelineFloodIsBounded >"$log" 2>&1
    local status=$?
    set -e
    if grep -aq "ERROR: AddressSanitizer" "$log"; then
        grep -a -A30 "ERROR: AddressSanitizer" "$log" | head -60
        echo "AddressSanitizer found a memory error (full log: $log)"; return 1
    fi
    if grep -aE '#[0-9]+ .* in \$s(13EventHTTPCore|10GreetdCore|16EventHTTPContext|6greetd|15EventHTTPSystem|17EventHTTPDuration|16EventHTTPOpenAPI|11GreetdRules|12GreetdClient|9EventHTTP)' "$log" | grep -aq .; then
        echo "LeakSanitizer found leaks through greetd's modules (full log: $log)"; return 1
    fi
    if ! grep -aq "Test run with .* passed" "$log"; then
        tail -40 "$log"; echo "tests failed under AddressSanitizer (exit $status)"; return 1
    fi
    echo "AddressSanitizer: no memory error, no leak in greetd's code ($(grep -a 'Test run with' "$log" | tail -1))"
}

tsan() {
    echo "== ThreadSanitizer: swift test --sanitize=thread"
    local log=.build-tsan/tsan.log
    mkdir -p .build-tsan
    set +e
    TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1" swift test --sanitize=thread --scratch-path .build-tsan --skip churn --skip pipelineFloodIsBounded >"$log" 2>&1
    local status=$?
    set -e
    if grep -aq "WARNING: ThreadSanitizer" "$log"; then
        grep -a -A25 "WARNING: ThreadSanitizer" "$log" | head -80
        echo "ThreadSanitizer reported races (full log: $log)"; return 1
    fi
    if ! grep -aq "Test run with .* passed" "$log"; then
        tail -40 "$log"; echo "tests failed under ThreadSanitizer (exit $status)"; return 1
    fi
    echo "ThreadSanitizer: no race reported ($(grep -a 'Test run with' "$log" | tail -1))"
}

valgrind_storm() {
    echo "== valgrind memcheck: a release greetd through a 1,000-request abort storm"
    command -v valgrind >/dev/null || { echo "valgrind is not installed: apt-get install -y valgrind"; return 1; }
    swift build -c release >/dev/null
    # valgrind 3.19 cannot read the DWARF Swift 6 emits; a copy without debug sections keeps the
    # symbol table, so stacks still name functions.
    mkdir -p .build-valgrind
    cp .build/release/greetd .build-valgrind/greetd
    strip --strip-debug .build-valgrind/greetd
    # A port free right now (the kernel picks it); greetd binds it a moment later.
    local port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    valgrind --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
        --suppressions=scripts/valgrind.supp --error-exitcode=99 --log-file=.build-valgrind/memcheck.log \
        .build-valgrind/greetd --host 127.0.0.1 --port "$port" --workers 2 --log-level warning --tick 100ms &
    local pid=$!
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.2
    done
    .build/release/greet-stress --port "$port" --requests 1000 --connections 200 --abort-after 20ms-300ms \
        --path '/?delay=5s' --abort-style mix --no-verify >/dev/null
    kill -TERM "$pid"
    set +e
    wait "$pid"
    local status=$?
    set -e
    grep -E "definitely lost|ERROR SUMMARY" .build-valgrind/memcheck.log
    if [ "$status" -ne 0 ]; then
        echo "memcheck found errors or definite leaks (exit $status; log: .build-valgrind/memcheck.log)"; return 1
    fi
    echo "valgrind: 0 errors, 0 bytes definitely lost"
}

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; }

case "${1:-}" in
    "") usage; echo; echo "Name a run: asan, tsan, valgrind or all (each is slow)."; exit 64 ;;
    asan) asan ;;
    tsan) tsan ;;
    valgrind) valgrind_storm ;;
    all) asan; tsan; valgrind_storm ;;
    -h|--help) usage ;;
    *) echo "unknown run: $1 (asan, tsan, valgrind, all)"; exit 64 ;;
esac
