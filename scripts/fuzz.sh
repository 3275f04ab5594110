#!/usr/bin/env bash
# Builds greetd's libFuzzer targets (Fuzz/<target>/main.swift) and runs each for a bounded time.
# Run `scripts/fuzz.sh --help` for the details.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/fuzz.sh [options] [target...]

Builds the libFuzzer targets under Fuzz/ into .build-fuzz/ and runs each for FUZZ_SECONDS,
starting from a scratch copy of its seed corpus (Fuzz/corpus/<target>/). Targets (default: all):

  duration   GoDuration(parsing:) and its description      (GreetdRules)
  requestid  acceptableRequestID                            (GreetdRules)
  logfield   logField, read back by LogLine.field           (GreetdRules)
  query      evhttp_parse_query_str + GreetingQuery.resolve (GreetdRules, libevent's C API, -levent)
  logline    formatLogLine, read back by LogLine(parsing:)  (GreetdRules)

Every target links the GreetdRules module itself (Sources/GreetdRules, no dependencies), built
once with the fuzzer's instrumentation: the fuzzers test the code greetd and greet-stress run.
They get the C library through EventHTTPSystem (Sources/EventHTTPSystem, no dependencies), built the
same way, so no target carries platform conditionals.
Each is compiled with `swiftc -sanitize=fuzzer,address -parse-as-library -O`, never with the
whole package. `query` is SKIPPED (a failure with --strict) when pkg-config cannot find libevent.

Before fuzzing, every input under Fuzz/regressions/<target>/ is replayed: one that still fails
counts as a failure. After fuzzing `duration`, if `go` is installed, the corpus is replayed
against Go's own time.ParseDuration (Fuzz/duration/goref) and every disagreement is a failure.

Options:
  --grow        Merge inputs that add coverage into the committed Fuzz/corpus/<target>/
                (libFuzzer -merge=1). Without it the committed corpus is never touched.
  --build-only  Build the targets, replay the regressions, do not fuzz.
  --strict      A SKIPPED target is a failure.
  -h, --help    This text.

Environment:
  FUZZ_SECONDS        Seconds per target (default 60; CI uses 10).
  SWIFTC              The Swift compiler (default: swiftc on PATH).
  GREETD_FUZZ_LOGLINE_TRUSTED_METADATA=1
                      logline: only check the one-line properties on inputs whose fields
                      and request id have no control byte (see Fuzz/logline/main.swift).

Output per target: executions, executions per second, corpus size before and after, coverage;
on a crash, the failing check and the path of the saved input (.build-fuzz/artifacts/<target>/).
Reproduce one with: SWIFT_BACKTRACE=enable=no .build-fuzz/bin/<target> <input file>
(without that setting Swift's backtracer, not libFuzzer, takes the trap, and under ASan it can hang).

Exit status: 0 when every target ran clean; 1 on a crash, leak, timeout, reproducing
regression, build failure or Go disagreement; 2 on bad usage or a toolchain without libFuzzer.
EOF
}

if ((BASH_VERSINFO[0] < 4)); then
    echo "fuzz.sh: needs bash 4 or later (this is $BASH_VERSION)" >&2
    exit 2
fi

ALL_TARGETS=(duration requestid logfield query logline)
GROW=0
BUILD_ONLY=0
STRICT=0
TARGETS=()
while (($#)); do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --grow) GROW=1 ;;
        --build-only) BUILD_ONLY=1 ;;
        --strict) STRICT=1 ;;
        -*) echo "fuzz.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
        *)
            case " ${ALL_TARGETS[*]} " in
                *" $1 "*) TARGETS+=("$1") ;;
                *) echo "fuzz.sh: unknown target '$1'; targets: ${ALL_TARGETS[*]}" >&2; exit 2 ;;
            esac
            ;;
    esac
    shift
done
((${#TARGETS[@]})) || TARGETS=("${ALL_TARGETS[@]}")

FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
if ! [[ "$FUZZ_SECONDS" =~ ^[1-9][0-9]*$ ]]; then
    echo "fuzz.sh: FUZZ_SECONDS must be a positive whole number of seconds, got '$FUZZ_SECONDS'" >&2
    exit 2
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/.build-fuzz"
BIN="$OUT/bin"
SWIFTC="${SWIFTC:-swiftc}"
mkdir -p "$BIN" "$OUT/logs" "$OUT/run" "$OUT/artifacts" "$OUT/deps"
cd "$ROOT"

# Swift's own backtracer would take the trap before libFuzzer and ASan can report it.
export SWIFT_BACKTRACE=enable=no

# ---------------------------------------------------------------------------------------------
# Toolchain

if ! command -v "$SWIFTC" >/dev/null 2>&1; then
    echo "fuzz.sh: '$SWIFTC' not found; install Swift (https://swift.org/install) or set SWIFTC" >&2
    exit 2
fi

PROBE="$OUT/probe"
mkdir -p "$PROBE"
cat >"$PROBE/probe.swift" <<'EOF'
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt { 0 }
EOF
LINKER=()
if "$SWIFTC" -sanitize=fuzzer,address -parse-as-library -use-ld=lld "$PROBE/probe.swift" -o "$PROBE/probe" >"$PROBE/lld.log" 2>&1; then
    LINKER=(-use-ld=lld)  # quiet; gold warns about every ASan helper symbol
elif ! "$SWIFTC" -sanitize=fuzzer,address -parse-as-library "$PROBE/probe.swift" -o "$PROBE/probe" >"$PROBE/probe.log" 2>&1; then
    {
        echo "fuzz.sh: $(command -v "$SWIFTC") cannot build libFuzzer targets (-sanitize=fuzzer,address):"
        grep -m5 -iE "error|unsupported|not found|cannot" "$PROBE/probe.log" | sed 's/^/    /' || sed -n 1,5p "$PROBE/probe.log"
        echo "  libFuzzer ships with the swift.org toolchains for Linux (libclang_rt.fuzzer-*.a);"
        echo "  Xcode's toolchain and some distribution packages lack it."
        echo "  Compiler: $("$SWIFTC" --version 2>&1 | head -1)"
    } >&2
    exit 2
fi

COMMON=(-sanitize=fuzzer,address -parse-as-library -O -g -swift-version 6 "${LINKER[@]}")

# ---------------------------------------------------------------------------------------------
# GreetdRules and EventHTTPSystem, the modules every target links

rel() { echo "${1#"$ROOT"/}"; }

declare -A STATUS DETAIL EXECS RATE CORPUS_BEFORE CORPUS_AFTER COVERAGE
FAILED=0

skip() {
    STATUS[$1]=SKIPPED
    DETAIL[$1]="$2"
    echo "   SKIPPED: $2"
}

fail() {
    STATUS[$1]="$2"
    DETAIL[$1]="$3"
    FAILED=1
}

# The modules every target links, in dependency order (GreetdRules imports EventHTTPDuration).
MODULES=(EventHTTPSystem EventHTTPDuration GreetdRules)
declare -A MODULE_BUILT
# Builds Sources/<module> into .build-fuzz/deps/<module> (its .swiftmodule and lib<module>.a), once.
build_module() {
    local module="$1" dir="$ROOT/Sources/$1" out="$OUT/deps/$1" log="$OUT/logs/build-$1.log"
    [[ -n "${MODULE_BUILT[$module]:-}" ]] && return "${MODULE_BUILT[$module]}"
    local sources=()
    mapfile -t sources < <(find "$dir" -name '*.swift' | sort)
    rm -rf "$out" && mkdir -p "$out"
    echo "   swiftc ${COMMON[*]} -module-name $module -emit-module -emit-library -static $(rel "$dir")/*.swift"
    local deps=() built
    for built in "${!MODULE_BUILT[@]}"; do deps+=(-I "$OUT/deps/$built"); done
    if (cd "$out" && "$SWIFTC" "${COMMON[@]}" -module-name "$module" -emit-module -emit-library -static \
            "${deps[@]}" "${sources[@]}") >"$log" 2>&1; then
        MODULE_BUILT[$module]=0
    else
        echo "   building $module failed; see $(rel "$log")"
        grep -E "error:" "$log" | head -10 | sed 's/^/     /' || true
        MODULE_BUILT[$module]=1
    fi
    return "${MODULE_BUILT[$module]}"
}

# Sets EXTRA (flags beyond the shared modules) for a target, or skips it (returns 1).
flags_for() {
    local target="$1" flag
    EXTRA=()
    if [[ "$target" == query ]]; then
        if ! command -v pkg-config >/dev/null || ! pkg-config --exists libevent; then
            skip "$target" "libevent not found by pkg-config (apt-get install libevent-dev pkg-config)"
            return 1
        fi
        for flag in $(pkg-config --cflags libevent); do EXTRA+=(-Xcc "$flag"); done
        for flag in $(pkg-config --libs-only-L libevent); do EXTRA+=("$flag"); done
        EXTRA+=(-I "$ROOT/Modules/CLibevent" -levent)
    fi
}

build() {
    local target="$1" log="$OUT/logs/build-$1.log"
    local module modules=()
    for module in "${MODULES[@]}"; do
        if ! build_module "$module"; then
            fail "$target" BUILD-FAILED "$module did not build; see $(rel "$OUT/logs/build-$module.log")"
            return 1
        fi
        modules+=(-I "$OUT/deps/$module" -L "$OUT/deps/$module" "-l$module")
    done
    flags_for "$target" || return 1
    echo "   swiftc ${COMMON[*]} Fuzz/$target/main.swift ${MODULES[*]/#/-l} ${EXTRA[*]/#"$ROOT"\//}"
    if ! "$SWIFTC" "${COMMON[@]}" -module-name "Fuzz_$target" "Fuzz/$target/main.swift" "${modules[@]}" \
            "${EXTRA[@]}" -o "$BIN/$target" >"$log" 2>&1; then
        echo "   BUILD FAILED (full log: $(rel "$log")):"
        grep -E "error:" "$log" | head -10 | sed 's/^/     /' || tail -10 "$log" | sed 's/^/     /'
        fail "$target" BUILD-FAILED "see $(rel "$log")"
        return 1
    fi
}

max_len() {
    case "$1" in
        duration) echo 512 ;;   # long digit runs reach the overflow paths
        requestid) echo 160 ;;  # well past the 64-byte limit
        logfield) echo 1024 ;;
        query) echo 1024 ;;
        logline) echo 1024 ;;
    esac
}

# Replays Fuzz/regressions/<target>/*: each must now pass.
replay_regressions() {
    local target="$1" dir="Fuzz/regressions/$1" input rc bad=()
    [[ -d "$dir" ]] || return 0
    local inputs=()
    mapfile -t inputs < <(find "$dir" -maxdepth 1 -type f ! -name '*.md' ! -name '.*' | sort)
    ((${#inputs[@]})) || return 0
    for input in "${inputs[@]}"; do
        rc=0
        "$BIN/$target" "$input" >"$OUT/logs/regression-$target.log" 2>&1 || rc=$?
        if ((rc != 0)); then
            bad+=("$input")
            echo "   REGRESSION still fails: $input"
            grep -m1 -E "Fatal error|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)" "$OUT/logs/regression-$target.log" | sed 's/^/     /' || true
        fi
    done
    echo "   regressions: ${#inputs[@]} replayed, ${#bad[@]} failing"
    if ((${#bad[@]})); then
        fail "$target" REGRESSION "${#bad[@]} of ${#inputs[@]} inputs in $dir still fail (${bad[*]})"
        return 1
    fi
}

count_files() { find "$1" -maxdepth 1 -type f | wc -l | tr -d ' '; }

run() {
    local target="$1"
    local scratch="$OUT/run/$target" artifacts="$OUT/artifacts/$target/" log="$OUT/run/$target/fuzz.log"
    rm -rf "$scratch"
    mkdir -p "$scratch/corpus" "$artifacts"
    if [[ -d "Fuzz/corpus/$target" ]]; then
        find "Fuzz/corpus/$target" -maxdepth 1 -type f -exec cp {} "$scratch/corpus/" \;
    fi
    CORPUS_BEFORE[$target]="$(count_files "$scratch/corpus")"
    local args=(-max_total_time="$FUZZ_SECONDS" -max_len="$(max_len "$target")" -timeout=10 -rss_limit_mb=2048
                -print_final_stats=1 -artifact_prefix="$artifacts")
    [[ -f "Fuzz/$target.dict" ]] && args+=(-dict="Fuzz/$target.dict")
    local before_artifacts
    before_artifacts="$(ls "$artifacts")"
    echo "   $(rel "$BIN/$target") ${args[*]/#"$ROOT"\//} $(rel "$scratch/corpus")"
    local rc=0
    "$BIN/$target" "${args[@]}" "$scratch/corpus" >"$log" 2>&1 || rc=$?

    EXECS[$target]="$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -1)"
    [[ -n "${EXECS[$target]}" ]] || EXECS[$target]="$(sed -nE 's/^#([0-9]+)[[:space:]].*/\1/p' "$log" | tail -1)"
    RATE[$target]="$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+).*/\1/p' "$log" | tail -1)"
    [[ -n "${RATE[$target]}" ]] || RATE[$target]="$(sed -nE 's/.*exec\/s: ([0-9]+).*/\1/p' "$log" | tail -1)"
    CORPUS_AFTER[$target]="$(count_files "$scratch/corpus")"
    COVERAGE[$target]="$(grep -E '^#[0-9]+' "$log" | tail -1 | sed -nE 's/.*cov: ([0-9]+) ft: ([0-9]+).*/cov \1 ft \2/p')"
    echo "   executions ${EXECS[$target]:-?}, ${RATE[$target]:-?} exec/s, corpus ${CORPUS_BEFORE[$target]} -> ${CORPUS_AFTER[$target]} files, ${COVERAGE[$target]:-coverage ?} (log: $(rel "$log"))"

    local written
    written="$(sed -nE 's/.*Test unit written to (.*)$/\1/p' "$log")"
    if ((rc != 0)) || [[ -n "$written" ]]; then
        local reason
        reason="$(grep -m1 -E "Fatal error|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|==[0-9]+== ERROR" "$log" || true)"
        [[ -n "$reason" ]] || reason="libFuzzer exited with status $rc"
        echo "   CRASH: $reason"
        local path
        for path in $written; do echo "   input saved to $path  (reproduce: SWIFT_BACKTRACE=enable=no $(rel "$BIN/$target") $path)"; done
        [[ -n "$written" ]] || echo "   no input saved; see $log"
        fail "$target" CRASH "$reason; input: ${written:-none}"
        return 1
    fi
    STATUS[$target]=OK

    if ((GROW)); then
        local added before
        before="$(count_files "Fuzz/corpus/$target")"
        mkdir -p "Fuzz/corpus/$target"
        "$BIN/$target" -merge=1 -max_len="$(max_len "$target")" "Fuzz/corpus/$target" "$scratch/corpus" >"$scratch/merge.log" 2>&1 || {
            echo "   merge failed; see $(rel "$scratch/merge.log")"
            fail "$target" MERGE-FAILED "see $(rel "$scratch/merge.log")"
            return 1
        }
        added=$(($(count_files "Fuzz/corpus/$target") - before))
        echo "   --grow: $added inputs added to Fuzz/corpus/$target"
    fi
}

# duration only: replays the corpus against Go's time.ParseDuration.
go_diff() {
    local corpus="$OUT/run/duration/corpus"
    if ! command -v go >/dev/null 2>&1; then
        echo "   go-diff: skipped (no go on PATH)"
        return 0
    fi
    if ! go build -o "$BIN/goref" "Fuzz/duration/goref/main.go" >"$OUT/logs/build-goref.log" 2>&1; then
        echo "   go-diff: skipped (building Fuzz/duration/goref failed; see $(rel "$OUT/logs/build-goref.log"))"
        return 0
    fi
    local rc=0
    GREETD_FUZZ_PRINT=1 "$BIN/duration" -runs=0 "$corpus" "Fuzz/corpus/duration" 2>/dev/null \
        | "$BIN/goref" >"$OUT/logs/go-diff.log" 2>&1 || rc=$?
    head -20 "$OUT/logs/go-diff.log" | grep -v '^go-diff:' | sed 's/^/   /' || true
    grep '^go-diff:' "$OUT/logs/go-diff.log" | sed 's/^/   /' || true
    if ((rc != 0)); then
        fail duration GO-DIFF "disagrees with Go's time.ParseDuration; see $(rel "$OUT/logs/go-diff.log")"
    fi
}

# ---------------------------------------------------------------------------------------------

echo "fuzz.sh: $("$SWIFTC" --version 2>&1 | head -1); targets: ${TARGETS[*]}; ${FUZZ_SECONDS}s each$( ((BUILD_ONLY)) && echo ' (build only)')"
for target in "${TARGETS[@]}"; do
    echo "== $target"
    build "$target" || continue
    replay_regressions "$target" || true
    ((BUILD_ONLY)) && { [[ -n "${STATUS[$target]:-}" ]] || STATUS[$target]=BUILT; continue; }
    regression="${STATUS[$target]:-}"
    run "$target" || true
    if [[ "$regression" == REGRESSION && "${STATUS[$target]}" == OK ]]; then
        STATUS[$target]=REGRESSION  # fuzzing found nothing new, but the old input still fails
    fi
    [[ "$target" == duration && "${STATUS[$target]}" == OK ]] && go_diff
done

echo
echo "Summary (FUZZ_SECONDS=$FUZZ_SECONDS):"
printf '  %-10s %-13s %12s %9s %15s  %s\n' target result executions exec/s corpus notes
for target in "${TARGETS[@]}"; do
    status="${STATUS[$target]:-?}"
    corpus="-"
    [[ -n "${CORPUS_BEFORE[$target]:-}" ]] && corpus="${CORPUS_BEFORE[$target]} -> ${CORPUS_AFTER[$target]}"
    printf '  %-10s %-13s %12s %9s %15s  %s\n' "$target" "$status" "${EXECS[$target]:--}" "${RATE[$target]:--}" \
        "$corpus" "${DETAIL[$target]:-${COVERAGE[$target]:-}}"
    if [[ "$status" == SKIPPED ]] && ((STRICT)); then FAILED=1; fi
done
if ((FAILED)); then
    echo "fuzz.sh: FAILED"
    exit 1
fi
echo "fuzz.sh: ok"
