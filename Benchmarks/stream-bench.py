#!/usr/bin/env python3
"""Issue 9's performance figures: async handlers and the streaming (SSE) greeting, beside Go.

From the repository root:

    python3 Benchmarks/stream-bench.py                 # full run (a few minutes)
    python3 Benchmarks/stream-bench.py --quick         # small counts, one round, to check the runner
    python3 Benchmarks/stream-bench.py --greetd PATH   # any greetd binary (default: builds release)
    python3 Benchmarks/stream-bench.py --report-only   # the table again, from the summary

Figures, each from alternating rounds (greetd, Go, greetd, Go, ...; a fresh server per round),
reported as the median over rounds of each round's figure:

1. Cancel latency with 2,000 pending and their aborts spread evenly over 3 s (FIN and RST
   alternating): close() -> the server's `Context Error` line, stamped on arrival by a separate
   reader process (run.py's stamper, CLOCK_MONOTONIC), for
   (a) the timer greeting `GET /?delay=120s`;
   (b) an async handler sleeping on a loop timer, ASYNC_ROUTE below (Go: its plain greeting,
       already a goroutine sleeping in a select);
   (c) the streaming greeting (`Accept: text/event-stream`), greetd beside Go's SSE mode.
   Targets: (b) p99 <= 1 ms and <= 1.2x (a)'s; (c) p99 <= 1 ms and <= Go's.
2. Memory per pending streaming greeting, 10,000 held: RSS growth / N, beside the plain
   greeting's and Go's SSE. Target: <= 1.5x the plain greeting's.
3. Fast path of an async handler that answers at once (ASYNC_ROUTE with delay=0s) against the
   plain route `/?delay=0s`: `wrk -t1 -c64`. Target: >= 0.85x.

A figure the server cannot give (no streaming, no async route) is reported as "not measured:
<reason>", found by a probe before measuring, so the script runs against any greetd. The
output is a summary only (no samples): Benchmarks/results/stream.json and stream.md (the table
for BENCHMARKS.md); with --quick, under .build-bench/quick/ instead, never the tracked files.
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import (BENCH_BUILD, ROOT, Server, log, machine, percentile, raise_fd_limit,  # noqa: E402
                 wait_lines)

# The route of the async handler that sleeps on a loop timer for ?delay= (and answers at once
# for delay=0s). One constant: change it here when greetd names it otherwise. Its query is
# joined to the figure's own (`delay=...`) with & or ?. The probe can only see that it answers
# 200: a greetd that ignores `async=1` answers with its plain greeting, so the table carries a
# caveat unless --async-route-verified says the route is the async handler.
ASYNC_ROUTE = "/?async=1"

STREAM_HEADER = "Accept: text/event-stream\r\n"
SPREAD_S = 3.0           # aborts spread over this long
PENDING_DELAY = "120s"   # long enough to outlive any round


def route(base, query):
    return base + ("&" if "?" in base else "?") + query


# -- servers --------------------------------------------------------------------------------------

def greetd_cmd(binary, level="info", tick="1s"):
    return lambda port: [binary, "--host", "127.0.0.1", "--port", str(port), "--log-level", level,
                         "--tick", tick, "--max-connections", "20000", "--max-delay", "10m"]


def go_cmd(level="info", tick="1s"):
    return lambda port: [os.path.join(BENCH_BUILD, "go-greetd"), "--host", "127.0.0.1", "--port", str(port),
                         "--log-level", level, "--tick", tick, "--max-delay", "10m"]


def exchange(port, path, headers="", timeout=5.0):
    """One request with Connection: close, read to the end: (status, head text, body bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n{headers}Connection: close\r\n\r\n".encode())
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    text = head.decode(errors="replace")
    try:
        status = int(text.split(" ", 2)[1])
    except (IndexError, ValueError):
        status = 0
    return status, text, body


def probe(cmd, kind, async_route):
    """None if the server can give figures of `kind` ("stream", "async"), else the reason."""
    srv = Server("probe", cmd)
    try:
        if kind == "stream":
            status, head, body = exchange(srv.port, "/?delay=0s", STREAM_HEADER)
            if status != 200 or "content-type: text/event-stream" not in head.lower():
                return f"no streaming greeting (GET / with {STREAM_HEADER.strip()} answered {status}, not an event stream)"
            if b"event: greeting" not in body:
                return "the stream did not end with an `event: greeting`"
        else:
            status, _, _ = exchange(srv.port, route(async_route, "delay=0s"))
            if status != 200:
                return f"no async route ({route(async_route, 'delay=0s')} answered {status})"
        return None
    except OSError as e:
        return f"probe failed: {e}"
    finally:
        srv.stop()


# -- 1. cancel latency, aborts spread over 3 s ----------------------------------------------------

def open_pending(port, path, headers, rid):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nX-Request-Id: {rid}\r\n{headers}\r\n".encode())
    return s


def drain(s):
    """Reads what the server sent (a stream's head and events), so that close() sends a FIN, not
    the RST Linux sends for a close with unread bytes."""
    s.setblocking(False)
    try:
        while s.recv(65536):
            pass
    except (BlockingIOError, OSError):
        pass


def cancel_spread(srv, n, path, headers, tag):
    socks = {f"{tag}{i}": open_pending(srv.port, path, headers, f"{tag}{i}") for i in range(n)}
    started = wait_lines(srv, lambda l: l.request_id in socks and l.message == "Handling greeting request", n, 120)
    if len(started) < n:
        log(f"  {srv.name}: only {len(started)} of {n} started")
    closed = {}
    start = time.monotonic() + 0.05
    for i, (rid, s) in enumerate(socks.items()):
        due = start + SPREAD_S * i / n
        while (now := time.monotonic()) < due:
            time.sleep(min(0.001, due - now))
        drain(s)
        if i % 2:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        closed[rid] = time.monotonic_ns()
        s.close()
    got = wait_lines(srv, lambda l: l.request_id in closed and l.message.startswith("Context Error"), n, 60)
    latencies = [(stamp - closed[l.request_id]) / 1000 for stamp, l in got]
    return {"n": n, "seen": len(got), "p50_us": percentile(latencies, 50), "p99_us": percentile(latencies, 99),
            "max_us": max(latencies) if latencies else float("nan")}


# -- 2. memory per pending greeting ---------------------------------------------------------------

def memory_per_pending(srv, n, path, headers):
    for _ in range(100):  # warm-up: allocator, lazily made structures
        exchange(srv.port, "/?delay=0s", headers)
    time.sleep(1.0)
    srv.new_lines()
    before = srv.rss()
    socks = [open_pending(srv.port, path, headers, f"m{i}") for i in range(n)]
    started = wait_lines(srv, lambda l: l.request_id and l.request_id.startswith("m") and l.message == "Handling greeting request", n, 180)
    time.sleep(1.0)
    after = srv.rss()
    for s in socks:
        s.close()
    return {"n": n, "started": len(started), "rss_before": before, "rss_after": after, "bytes_per_pending": (after - before) / n}


# -- 3. fast path ---------------------------------------------------------------------------------

def wrk(port, path, seconds):
    import re
    out = subprocess.run(["wrk", "-t1", "-c64", f"-d{seconds}s", f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True, check=True).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "non2xx": int(non2xx.group(1)) if non2xx else 0}


# -- the run --------------------------------------------------------------------------------------

def median(values):
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def rounds(count, variants):
    """Runs each (name, fn) variant `count` times, alternating; returns name -> [results]."""
    out = {name: [] for name, _ in variants}
    for r in range(count):
        for name, fn in variants:
            log(f"  round {r + 1}/{count}: {name}")
            out[name].append(fn())
    return out


def with_server(cmd, fn):
    def go():
        srv = Server("bench", cmd)
        try:
            return fn(srv)
        finally:
            srv.stop()
    return go


def measure(args):
    quick = args.quick
    n_cancel = 300 if quick else 2000
    n_mem = 1000 if quick else 10000
    n_rounds = 1 if quick else args.rounds
    wrk_s = 2 if quick else 5
    have_go = os.path.exists(os.path.join(BENCH_BUILD, "go-greetd"))
    g = args.greetd
    results = {"machine": machine(), "quick": quick, "greetd_binary": g, "async_route": args.async_route,
               "async_route_verified": args.async_route_verified,
               "rounds": n_rounds, "counts": {"cancel": n_cancel, "memory": n_mem, "wrk_seconds": wrk_s}}
    missing = {}
    if not os.path.exists(g):
        missing["greetd"] = missing["stream"] = missing["async"] = f"no greetd binary at {g}"
    else:
        for kind in ("stream", "async"):
            reason = probe(greetd_cmd(g), kind, args.async_route)
            if reason:
                missing[kind] = reason
                log(f"greetd: {kind} figures not measured: {reason}")
    if not have_go:
        missing["go"] = "Go reference not built (go is not installed)"
    results["not_measured"] = missing
    if "greetd" in missing:
        return results

    pending = f"/?delay={PENDING_DELAY}"
    async_pending = route(args.async_route, f"delay={PENDING_DELAY}")

    def cancel(cmd, path, headers, tag):
        return with_server(cmd, lambda srv: cancel_spread(srv, n_cancel, path, headers, tag))

    log(f"cancel latency: {n_cancel} pending, aborts spread over {SPREAD_S:.0f}s, {n_rounds} round(s)")
    variants = [("greetd_timer", cancel(greetd_cmd(g), pending, "", "t"))]
    if "async" not in missing:
        variants.append(("greetd_async", cancel(greetd_cmd(g), async_pending, "", "a")))
    if "stream" not in missing:
        variants.append(("greetd_stream", cancel(greetd_cmd(g), pending, STREAM_HEADER, "s")))
    if have_go:
        variants += [("go_plain", cancel(go_cmd(), pending, "", "t")),
                     ("go_sse", cancel(go_cmd(), pending, STREAM_HEADER, "s"))]
    results["cancel"] = rounds(n_rounds, variants)

    log(f"memory per pending greeting: {n_mem} held, {n_rounds} round(s)")
    # A tick of 10 minutes: no tick during the hold, so the figure is the pending state alone.
    def mem(cmd, headers):
        return with_server(cmd, lambda srv: memory_per_pending(srv, n_mem, pending, headers))
    variants = [("greetd_plain", mem(greetd_cmd(g, tick="10m"), ""))]
    if "stream" not in missing:
        variants.append(("greetd_stream", mem(greetd_cmd(g, tick="10m"), STREAM_HEADER)))
    if have_go:
        variants += [("go_plain", mem(go_cmd(tick="10m"), "")), ("go_sse", mem(go_cmd(tick="10m"), STREAM_HEADER))]
    results["memory"] = rounds(n_rounds, variants)

    log(f"fast path: wrk -t1 -c64 -d{wrk_s}s, {n_rounds} round(s)")
    def fast(cmd, path):
        return with_server(cmd, lambda srv: wrk(srv.port, path, wrk_s))
    variants = [("greetd_plain", fast(greetd_cmd(g, level="warning"), "/?delay=0s"))]
    if "async" not in missing:
        variants.append(("greetd_async", fast(greetd_cmd(g, level="warning"), route(args.async_route, "delay=0s"))))
    if have_go:
        variants.append(("go_plain", fast(go_cmd(level="warning"), "/?delay=0s")))
    results["fast_path"] = rounds(n_rounds, variants)
    return results


# -- the summary and the table --------------------------------------------------------------------

def summarize(results):
    """Medians over rounds; the per-round figures stay (a few numbers each), no samples."""
    out = {k: v for k, v in results.items() if k not in ("cancel", "memory", "fast_path")}
    for section, keys in (("cancel", ("p50_us", "p99_us", "max_us")), ("memory", ("bytes_per_pending",)), ("fast_path", ("rps",))):
        out[section] = {}
        for name, per_round in results.get(section, {}).items():
            entry = {f"median_{k}": round(median([r[k] for r in per_round]), 1) for k in keys}
            entry["rounds"] = [{k: round(v, 1) if isinstance(v, float) else v for k, v in r.items()} for r in per_round]
            out[section][name] = entry
    return out


def fmt_us(v):
    if v is None or v != v:
        return "n/a"
    return f"{v / 1000:.2f} ms" if v >= 1000 else f"{v:.0f} µs"


def table(s):
    missing = s.get("not_measured", {})
    cancel, memory, fast = s.get("cancel", {}), s.get("memory", {}), s.get("fast_path", {})

    def get(section, name, key):
        return section.get(name, {}).get(key)

    def not_measured(*kinds):
        """The cell of a figure not measured (the reason goes in the `met` column)."""
        return "not measured" if any(k in missing for k in kinds) else None

    def verdict(ok, *kinds):
        reasons = [missing[k] for k in kinds if k in missing]
        return f"not measured: {reasons[0]}" if reasons else ("met" if ok else "**missed**")

    rows = []
    n = s.get("counts", {}).get("cancel", "?")
    timer_p99 = get(cancel, "greetd_timer", "median_p99_us")
    async_p99 = get(cancel, "greetd_async", "median_p99_us")
    stream_p99 = get(cancel, "greetd_stream", "median_p99_us")
    go_sse_p99 = get(cancel, "go_sse", "median_p99_us")
    go_plain_p99 = get(cancel, "go_plain", "median_p99_us")

    def lat(name):
        return f"{fmt_us(get(cancel, name, 'median_p50_us'))} / {fmt_us(get(cancel, name, 'median_p99_us'))}" if name in cancel else None

    rows.append((f"Cancel latency, {n} pending, aborts over 3 s, p50 / p99: timer greeting",
                 lat("greetd_timer") or not_measured("greetd"), lat("go_plain") or not_measured("go") or "n/a", "baseline", ""))
    rows.append(("… async handler sleeping on a loop timer (Go: its plain greeting)",
                 lat("greetd_async") or not_measured("async"), lat("go_plain") or not_measured("go") or "n/a",
                 "p99 ≤ 1 ms and ≤ 1.2× the timer greeting's",
                 verdict(async_p99 is not None and timer_p99 is not None and async_p99 <= 1000 and async_p99 <= 1.2 * timer_p99, "async")))
    rows.append(("… streaming greeting (Go: SSE with http.Flusher)",
                 lat("greetd_stream") or not_measured("stream"), lat("go_sse") or not_measured("go") or "n/a",
                 "p99 ≤ 1 ms and ≤ Go's SSE",
                 verdict(stream_p99 is not None and go_sse_p99 is not None and stream_p99 <= 1000 and stream_p99 <= go_sse_p99, "stream", "go")))
    m = s.get("counts", {}).get("memory", "?")

    def mem(name):
        v = get(memory, name, "median_bytes_per_pending")
        return f"{v:.0f} B" if v is not None else None

    plain_b, stream_b = get(memory, "greetd_plain", "median_bytes_per_pending"), get(memory, "greetd_stream", "median_bytes_per_pending")
    rows.append((f"Memory per pending greeting, {m} held: plain", mem("greetd_plain") or not_measured("greetd"),
                 mem("go_plain") or not_measured("go") or "n/a", "baseline", ""))
    rows.append(("… streaming greeting (Go: SSE)", mem("greetd_stream") or not_measured("stream"),
                 mem("go_sse") or not_measured("go") or "n/a", "≤ 1.5× the plain greeting's",
                 verdict(stream_b is not None and plain_b is not None and stream_b <= 1.5 * plain_b, "stream")
                 + (f" ({stream_b / plain_b:.2f}×)" if stream_b and plain_b else "")))
    plain_r, async_r = get(fast, "greetd_plain", "median_rps"), get(fast, "greetd_async", "median_rps")
    rows.append(("Fast path, wrk -t1 -c64, requests/s: plain route", f"{plain_r:.0f}" if plain_r else not_measured("greetd"),
                 f"{get(fast, 'go_plain', 'median_rps'):.0f}" if "go_plain" in fast else not_measured("go") or "n/a", "baseline", ""))
    rows.append(("… async handler answering at once", f"{async_r:.0f}" if async_r else not_measured("async"), "",
                 "≥ 0.85× the plain route's",
                 verdict(async_r is not None and plain_r is not None and async_r >= 0.85 * plain_r, "async")
                 + (f" ({async_r / plain_r:.2f}×)" if async_r and plain_r else "")))
    _ = go_plain_p99
    mc = s.get("machine", {})
    lines = [
        f"Median of {s.get('rounds')} alternating round(s) each (greetd, Go, greetd, Go, …; a fresh server per round)"
        + (" — quick run: small counts" if s.get("quick") else "") + f". Machine: {mc.get('cpu')}, {mc.get('cores')} cores; "
        f"{mc.get('swift')}; {mc.get('go')}; {mc.get('date')}. Async route: `{s.get('async_route')}`"
        + ("" if s.get("async_route_verified") else " (assumed: the probe saw a 200, but a greetd that ignores the query "
           "would answer with its plain greeting, which the async rows would then measure)") + ".",
        "",
        "| figure | greetd | Go net/http | target | met |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small counts, one round; writes under .build-bench/quick/ only")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per figure (default 3)")
    ap.add_argument("--greetd", default=None, help="the greetd binary (default: build and use .build/release/greetd)")
    ap.add_argument("--async-route", default=ASYNC_ROUTE, help=f"the async handler's route (default {ASYNC_ROUTE})")
    ap.add_argument("--async-route-verified", action="store_true",
                    help="the async route is known to be the async handler (drops the table's caveat)")
    ap.add_argument("--skip-build", action="store_true", help="build neither greetd nor the Go reference")
    ap.add_argument("--report-only", action="store_true", help="print the table from the last summary, measuring nothing")
    args = ap.parse_args()
    directory = os.path.join(BENCH_BUILD, "quick") if args.quick else os.path.join(ROOT, "Benchmarks", "results")
    summary_path, table_path = os.path.join(directory, "stream.json"), os.path.join(directory, "stream.md")
    if args.report_only:
        with open(summary_path) as f:
            sys.stdout.write(table(json.load(f)))
        return
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install -y wrk")
    raise_fd_limit()
    if not args.skip_build:
        if args.greetd is None:
            log("building greetd (release)")
            subprocess.run(["swift", "build", "-c", "release", "--product", "greetd"], cwd=ROOT, check=True)
        if shutil.which("go"):
            log("building the Go reference")
            os.makedirs(BENCH_BUILD, exist_ok=True)
            subprocess.run(["go", "build", "-o", os.path.join(BENCH_BUILD, "go-greetd"), "."],
                           cwd=os.path.join(ROOT, "Benchmarks", "go-greetd"), check=True)
    args.greetd = os.path.abspath(args.greetd or os.path.join(ROOT, ".build/release/greetd"))
    summary = summarize(measure(args))
    os.makedirs(directory, exist_ok=True)
    with open(summary_path, "w") as f:
        json.dump(summary, f, indent=1, ensure_ascii=False)
        f.write("\n")
    text = table(summary)
    with open(table_path, "w") as f:
        f.write(text)
    sys.stdout.write(text)
    log("wrote " + ", ".join(os.path.relpath(p, ROOT) for p in (summary_path, table_path)))


if __name__ == "__main__":
    main()
