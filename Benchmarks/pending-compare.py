#!/usr/bin/env python3
"""Bytes per pending greeting of two greetd binaries, side by side (docs/PERFORMANCE.md's method).

    python3 Benchmarks/pending-compare.py --before OLD/greetd --after .build/release/greetd [--rounds 3] [--held 10000] [--path /?async=1&delay=300s]

Each round holds `--held` greetings (`--path`, default `/?delay=300s`; `/?async=1&delay=300s`
for the async handler; `--workers 1`) on a fresh server of each
binary in turn and divides the settled RSS growth by the count (run.py's memory_per_pending).
Prints {"before": [...], "after": [...]} (bytes, one per round).
"""
import argparse, json, os, resource, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the runner's Server and memory_per_pending)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--held", type=int, default=10000)
    ap.add_argument("--path", default="/?delay=300s", help="the target held pending (default: the plain greeting)")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    result = {"before": [], "after": []}
    for _ in range(a.rounds):
        for name in ("before", "after"):
            binary = os.path.abspath(getattr(a, name))
            cmd = lambda port, b=binary: [b, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                                          "--max-connections", "20000", "--max-delay", "10m", "--workers", "1"]
            srv = run.Server(name, cmd)
            try:
                out = run.memory_per_pending(srv, a.held, a.path)
            finally:
                srv.stop()
            result[name].append(round(out["bytes_per_pending"]))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
