#!/usr/bin/env bash
# Checks that greetd as docs/OPERATIONS.md installs it runs on a machine without Swift: the binary
# is built exactly as its install steps build it (release, --static-swift-stdlib, in
# .build-static), then
#   1. its dynamic section names no Swift runtime library (libswift*, libFoundation*, libdispatch,
#      libBlocksRuntime) and has no RPATH/RUNPATH into the toolchain;
#   2. ldd resolves every library it needs, none of them from the toolchain;
#   3. installed as greetd-http in a scratch directory and run with an empty environment
#      (env -i: no LD_LIBRARY_PATH, no PATH), it prints its version, listens on a free port,
#      answers a real request, and exits 0 on SIGTERM;
#   4. as root (CI), step 3 again with the toolchain's runtime directory hidden (a private mount
#      namespace with an empty tmpfs over it), as on a server without Swift or under a unit with
#      ProtectHome=yes and a toolchain in a home directory.
#
#   scripts/check-install.sh            # .ci/run runs it
#   SKIP_BUILD=1 scripts/check-install.sh   # reuse .build-static
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "check-install: FAIL: $*" >&2; exit 1; }

swift_driver=$(readlink -f "$(command -v swift)")
toolchain=$(dirname "$(dirname "$swift_driver")")          # e.g. /opt/swift/usr
runtime=$(dirname "$(find "$toolchain/lib" -name 'libswiftCore.so' -path '*linux*' -print -quit)")
[ -d "$runtime" ] || fail "cannot find libswiftCore.so under $toolchain/lib"

started=$(date +%s)
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    swift build -c release --product greetd --static-swift-stdlib --scratch-path .build-static
fi
built=$(date +%s)
binary=.build-static/release/greetd
[ -x "$binary" ] || fail "no $binary"

# 1. The dynamic section.
dynamic=$(readelf -d "$binary")
if grep -E 'NEEDED.*\[(libswift|libFoundation|lib_Foundation|libdispatch|libBlocksRuntime)' <<<"$dynamic"; then
    fail "$binary still needs the Swift runtime (above); build it with --static-swift-stdlib"
fi
if grep -E '\((RUNPATH|RPATH)\)' <<<"$dynamic" | grep -F -e "$toolchain" -e swift; then
    fail "$binary has a run path into the toolchain (above)"
fi

# 2. What the loader resolves.
libraries=$(env -i ldd "$binary")
if grep -F 'not found' <<<"$libraries"; then fail "libraries not found (above)"; fi
if grep -F "$toolchain" <<<"$libraries"; then fail "libraries resolved from the toolchain (above)"; fi

# 3. Installed under its own name, run with an empty environment.
scratch=$(mktemp -d)
server=""
cleanup() {
    if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then kill -KILL "$server" 2>/dev/null || true; fi
    rm -rf "$scratch"
}
trap cleanup EXIT
install -m 755 "$binary" "$scratch/greetd-http"
version=$(sed -n 's/^public let greetdVersion = "\(.*\)"$/\1/p' Sources/GreetdRules/Version.swift)

# Runs the installed binary with no environment: --version, then a real request on a free port.
# $1 names the run; the rest is a command prefix (empty, or unshare ... to hide the toolchain).
run_installed() {
    local name=$1; shift
    local printed
    printed=$("$@" env -i "$scratch/greetd-http" --version) || fail "$name: --version exited $?"
    [ "$printed" = "$version" ] || fail "$name: --version printed '$printed', Version.swift says '$version'"

    local log="$scratch/$name.log"
    # Created here, not by the background job's redirection, which may not have run yet when
    # the loop below first reads it.
    : >"$log"
    "$@" env -i "$scratch/greetd-http" --host 127.0.0.1 --port 0 --delay 0s --workers 2 --log-level notice 2>"$log" &
    server=$!
    local port="" tries=0
    while [ -z "$port" ]; do
        port=$(sed -n 's|.*Server listening on http://127\.0\.0\.1:\([0-9]*\)$|\1|p' "$log" | head -1)
        [ -n "$port" ] && break
        kill -0 "$server" 2>/dev/null || { cat "$log" >&2; fail "$name: greetd-http exited before listening"; }
        tries=$((tries + 1)); [ "$tries" -lt 300 ] || { cat "$log" >&2; fail "$name: no listening line in 30s"; }
        sleep 0.1
    done
    local reply
    reply=$(exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'GET / HTTP/1.0\r\nHost: x\r\n\r\n' >&3 && cat <&3) \
        || fail "$name: request to port $port failed"
    grep -q '^HTTP/1\.[01] 200' <<<"$reply" && grep -q 'Hello Gopher!' <<<"$reply" \
        || { printf '%s\n' "$reply" >&2; fail "$name: unexpected reply (above)"; }
    kill -TERM "$server"
    local status=0
    wait "$server" || status=$?
    server=""
    [ "$status" -eq 0 ] || { cat "$log" >&2; fail "$name: exit status $status after SIGTERM"; }
    grep -q 'notice Stopped' "$log" || { cat "$log" >&2; fail "$name: no 'Stopped' line"; }
    echo "check-install: $name: --version $printed, 200 'Hello Gopher!' on port $port, exit 0 on SIGTERM"
}

run_installed "env -i"

# 4. With the toolchain's runtime hidden. A dynamically linked greetd fails here with
# "libswiftCore.so: cannot open shared object file".
if [ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null; then
    # unshare and sh exec what follows, so the server's pid stays the one SIGTERM is sent to.
    [ -z "$(unshare -m sh -c 'mount -t tmpfs none "$0" && ls -A "$0"' "$runtime")" ] || fail "cannot hide $runtime"
    run_installed "toolchain hidden" unshare -m sh -c 'mount -t tmpfs none "$0" && exec "$@"' "$runtime"
else
    echo "check-install: not root (or no mount namespaces): skipped the run with $runtime hidden"
fi

echo "check-install: ok: $binary ($(stat -c %s "$binary") bytes) needs only $(awk '/=>/ {print $1}' <<<"$libraries" | tr '\n' ' ')"
echo "check-install: build $((built - started))s, checks $(( $(date +%s) - built ))s"
