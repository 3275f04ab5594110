#!/usr/bin/env bash
# Builds the EventHTTP DocC catalog (Sources/EventHTTP/EventHTTP.docc and the doc comments of
# Sources/EventHTTP) with warnings as errors: a broken ``Symbol`` link, an unknown
# <doc:Article> or a malformed topic group fails the script (non-zero exit).
#
#   scripts/docs.sh                 # writes the archive to .build/docs
#   DOCS_OUTPUT=/tmp/docs scripts/docs.sh
set -euo pipefail

cd "$(dirname "$0")/.."
output="${DOCS_OUTPUT:-.build/docs}"
mkdir -p "$output"

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

# --warnings-as-errors makes docc fail on any warning; the grep below also catches a warning
# that a plugin or docc version reports without failing.
set +e
swift package --allow-writing-to-directory "$output" \
    generate-documentation --target EventHTTP \
    --warnings-as-errors \
    --output-path "$output" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

if [[ $status -ne 0 ]]; then
    echo "docs.sh: documentation build failed (exit $status)" >&2
    exit "$status"
fi
if grep -E "(^|[^a-z])warning:" "$log" | grep -v -E "^warning: '[^']+': (found [0-9]+ file|dependency)" >/dev/null; then
    echo "docs.sh: documentation has warnings:" >&2
    grep -E "(^|[^a-z])warning:" "$log" >&2
    exit 1
fi
echo "docs.sh: documentation built without warnings in $output"
