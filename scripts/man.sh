#!/usr/bin/env bash
# Regenerates docs/greetd.1, greetd's man page, from its --help (swift-argument-parser's
# generate-manual plugin; works offline once the package's dependencies are resolved).
# Run it after changing a flag, its help or the version; FlagTests checks that the page is current.
#
#   scripts/man.sh            # writes docs/greetd.1
#   man ./docs/greetd.1       # reads it
#   sudo install -m 644 docs/greetd.1 /usr/local/share/man/man1/greetd-http.1   # with the unit (README)
set -euo pipefail
cd "$(dirname "$0")/.."

# The page's date is the version's: the last commit that touched Version.swift, so that running
# this again without a change gives the same file.
date=$(git log -1 --format=%cs -- Sources/GreetdRules/Version.swift 2>/dev/null || true)
[ -n "$date" ] || date=$(date -u +%F)

swift package plugin generate-manual --configuration debug --date "$date" >/dev/null
out=.build/plugins/GenerateManual/outputs/greetd/greetd.1
[ -s "$out" ] || { echo "man.sh: the plugin wrote no $out"; exit 1; }
version=$(sed -n 's/^public let greetdVersion = "\(.*\)"$/\1/p' Sources/GreetdRules/Version.swift)
[ -n "$version" ] || { echo "man.sh: no version in Sources/GreetdRules/Version.swift"; exit 1; }
mkdir -p docs
# The plugin writes a page for a command with subcommands; greetd has none. Fix up what follows
# from that, and put in the version and greetd's own exit statuses:
#   .Os                     -> .Os greetd VERSION (the page's footer)
#   .Ar subcommand          -> dropped from the synopsis
#   .It Em help ... .El     -> the "help subcommand" entry, dropped
#   .Ex -std                -> the exit statuses --help lists
#   empty line              -> .Pp
python3 - "$out" docs/greetd.1 "$version" <<'PY'
import sys
source, target, version = sys.argv[1:]
lines = open(source).read().rstrip("\n").split("\n")
out, skipping = [], False
for line in lines:
    if skipping:
        skipping = line != ".El"
        continue
    if line == ".It Em help":
        skipping = True
        continue
    if line == ".Ar subcommand":
        continue
    if line == "":
        line = ".Pp"  # mdoc wants a macro, not an empty line, between paragraphs
    if line == ".Os":
        line = f".Os greetd {version}"
    if line == ".Ex -std":
        out += [".Bl -tag -width 4n",
                ".It 0", "Clean shutdown after SIGTERM or SIGINT (and for --help, --version).",
                ".It 1", "Runtime error, such as a port in use or a host that does not resolve.",
                ".It 64", "Usage error: a bad flag or value; the message names it.",
                ".El"]
        continue
    out.append(line)
open(target, "w").write("\n".join(out) + "\n")
PY
echo "man.sh: wrote docs/greetd.1 ($(wc -l <docs/greetd.1) lines, dated $date)"
