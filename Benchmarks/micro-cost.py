#!/usr/bin/env python3
"""Instructions and allocations per operation of executor-bench's library scenarios.

    swift build -c release --product executor-bench
    python3 Benchmarks/micro-cost.py [--binary .build/release/executor-bench]
                                     [--scenarios routing,body,async] [--ops 10000]

For each scenario, runs `executor-bench --scenario NAME --ops N --repeats 1` and the same with
2N ops, under `valgrind --tool=callgrind` (the program's instructions, Ir) and under
`valgrind --tool=dhat` (its total heap blocks and bytes). The figure per operation is the
difference between the two runs divided by N, so the process's startup, the router's or the
loop's set-up and every one-time cost cancel. The binary runs as a stripped copy: valgrind 3.19
cannot read Swift 6's DWARF.

The scenarios (executor-bench --scenario all lists them with their throughput):
  routing               Router.match over a mix of 13 requests on a 20-route router
  routing-static        Router.match of GET /v1/models (literal segments only)
  routing-params        Router.match of GET /users/42/posts/7 (two captures)
  body                  RequestBody.decode(as:) of a 101-byte JSON object, then .text
  body-shared-decoder   the same with one JSONDecoder reused (decode(as:using:))
  async                 a Request built and answered by a Task on the loop (LoopExecutor)
  async-task            a bare Task on the loop: the hop alone
  async-server          GET / of an async route on a live EventHTTPServer (1 loop), over one
                        keep-alive loopback connection: the whole path, evhttp included (the
                        client's side, on the same process, allocates nothing per request)

Prints a table, then one JSON object per scenario (--json: the JSON lines only).
Needs valgrind (`apt-get install -y valgrind`) and binutils' `strip`.
"""
import argparse, json, os, re, shutil, subprocess, sys, tempfile

DEFAULT_SCENARIOS = "routing,body,async"


def need(tool, package):
    if shutil.which(tool) is None:
        sys.exit(f"micro-cost: `{tool}` not found; install it with: apt-get install -y {package}")


def valgrind(tool, binary, scenario, ops, workdir):
    """Runs one scenario under `tool`; returns (instructions,) for callgrind, (bytes, blocks) for dhat."""
    out = os.path.join(workdir, f"{tool}-{scenario}-{ops}.out")
    log = os.path.join(workdir, f"{tool}-{scenario}-{ops}.log")
    extra = [f"--callgrind-out-file={out}"] if tool == "callgrind" else [f"--dhat-out-file={out}"]
    command = ["valgrind", f"--tool={tool}", f"--log-file={log}", *extra,
               binary, "--scenario", scenario, "--ops", str(ops), "--repeats", "1"]
    run = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if run.returncode != 0:
        sys.exit(f"micro-cost: {' '.join(command)} failed ({run.returncode}):\n{run.stdout}{run.stderr}")
    if tool == "callgrind":
        total = None
        with open(out) as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    total = max(total or 0, int(line.split()[1]))
        if total is None:
            sys.exit(f"micro-cost: no totals in {out}")
        return (total,)
    with open(log, errors="replace") as f:
        text = f.read()
    match = re.search(r"Total:\s+([\d,]+) bytes in ([\d,]+) blocks", text)
    if not match:
        sys.exit(f"micro-cost: no `Total:` line in dhat's report {log}")
    return tuple(int(group.replace(",", "")) for group in match.groups())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 epilog="\n".join(__doc__.splitlines()[2:]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=".build/release/executor-bench",
                    help="executor-bench, built in release mode (default: %(default)s)")
    ap.add_argument("--scenarios", default=DEFAULT_SCENARIOS,
                    help="comma-separated scenario names (default: %(default)s)")
    ap.add_argument("--ops", type=int, default=10000,
                    help="N: the runs do N and 2N operations; per-op figures are the difference / N (default: %(default)s)")
    ap.add_argument("--json", action="store_true", help="print only one JSON object per scenario")
    ap.add_argument("--keep", action="store_true", help="keep valgrind's output files (their directory is printed)")
    a = ap.parse_args()
    need("valgrind", "valgrind")
    need("callgrind_annotate", "valgrind")
    need("strip", "binutils")
    if not os.access(a.binary, os.X_OK):
        sys.exit(f"micro-cost: {a.binary} is not an executable; build it with: swift build -c release --product executor-bench")
    if a.ops <= 0:
        sys.exit("micro-cost: --ops must be positive")

    work = tempfile.mkdtemp(prefix="micro-cost-")
    binary = os.path.join(work, "executor-bench")
    shutil.copy(a.binary, binary)
    subprocess.run(["strip", "--strip-debug", binary], check=True)
    scenarios = [name for name in a.scenarios.split(",") if name]
    results = []
    try:
        for scenario in scenarios:
            n, n2 = a.ops, 2 * a.ops
            (i1,), (i2,) = (valgrind("callgrind", binary, scenario, ops, work) for ops in (n, n2))
            (b1, k1), (b2, k2) = (valgrind("dhat", binary, scenario, ops, work) for ops in (n, n2))
            results.append({
                "scenario": scenario, "ops": n,
                "instructions_per_op": round((i2 - i1) / n),
                "allocations_per_op": round((k2 - k1) / n, 2),
                "bytes_allocated_per_op": round((b2 - b1) / n),
                "startup_instructions": i1 - (i2 - i1),
            })
            if not a.json:
                print(f"{scenario}: done", file=sys.stderr)
    finally:
        if a.keep:
            print(f"micro-cost: valgrind's files are in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    if not a.json:
        print(f"executor-bench scenarios under valgrind: ({a.ops * 2} ops - {a.ops} ops) / {a.ops}")
        print("")
        print(f"{'scenario':<22}{'instructions/op':>17}{'allocations/op':>16}{'bytes/op':>10}")
        for r in results:
            print(f"{r['scenario']:<22}{r['instructions_per_op']:>17,}{r['allocations_per_op']:>16}{r['bytes_allocated_per_op']:>10,}")
        print("")
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
