#!/usr/bin/env python3
"""greetd's benchmark suite: greetd side by side with the Go reference (and raw C evhttp).

One command, from the repository root:

    python3 Benchmarks/run.py            # full run, rewrites BENCHMARKS.md and the chart
    python3 Benchmarks/run.py --quick    # smaller counts, to check the runner itself; writes
                                         # only under .build-bench/quick/, never the tracked files

It builds greetd and greet-stress in release mode, the Go reference (Benchmarks/go-greetd,
when `go` is installed; `apt-get install golang-go`) and the C evhttp floor
(Benchmarks/c-evhttp), then measures, for each server, on loopback only:

1. cancel latency: client close() -> the server's `Context Error` line, stamped on arrival by a
   separate reader process (CLOCK_MONOTONIC), one abort at a time and then N concurrent aborts
   (FIN and RST mixed);
2. memory per pending greeting: RSS growth / N with N greetings held open;
3. capacity: the most pending greetings held at once (up to the fd limit), and how late their
   one-second ticks fire (p99), from the servers' own log timestamps;
4. fast path: `wrk -t1 -c64` requests/second on GET /?delay=0s, logs at warning level;
5. abort storm: greet-stress aborts many requests at random; in-flight back to 0, RSS back near
   its pre-storm figure, no crash.

Everything is bounded in count and time and stops the servers it started. Issue 9's figures
(async handlers, the streaming greeting beside Go's SSE) are Benchmarks/stream-bench.py's,
which reuses this runner's stamper and helpers.

Outputs: BENCHMARKS.md and Benchmarks/cancel-latency.svg; Benchmarks/results/latest.json, a
small summary of the run (percentiles, and the quantiles the chart is drawn from), committed;
Benchmarks/results/raw.json, every sample, git-ignored. `--report-only` redraws the first two
from the summary alone.
"""
import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

from greetd_format import parse_line, parse_time_ns as parse_wall  # greetd's log-line format

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_BUILD = os.path.join(ROOT, ".build-bench")

# A separate process stamps each stderr line as it arrives, so that the runner's own work (and
# Python's GIL) cannot delay the stamps. CLOCK_MONOTONIC is shared by every process.
STAMPER = r"""
import os, sys, time
out = open(sys.argv[1], "w", buffering=1 << 20)
buf = b""
while True:
    chunk = os.read(0, 1 << 16)
    if not chunk:
        break
    now = time.monotonic_ns()
    buf += chunk
    *lines, buf = buf.split(b"\n")
    for line in lines:
        out.write(f"{now}\t{line.decode(errors='replace')}\n")
    out.flush()
out.close()
"""


def log(message):
    print(f"[{datetime.datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, cwd=ROOT, check=True, **kw)


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def percentile(values, p):
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, int(round(p / 100 * (len(ordered) - 1)))))
    return ordered[k]


class Server:
    """A server process whose stderr goes through the stamper into a file."""

    def __init__(self, name, make_cmd, env=None):
        self.name = name
        port = free_port()
        cmd = make_cmd(port)
        self.stamp_file = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log", delete=False).name
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=full_env)
        self.stamper = subprocess.Popen([sys.executable, "-c", STAMPER, self.stamp_file], stdin=self.proc.stderr)
        self.proc.stderr.close()
        self.offset = 0
        self.port = port
        deadline = time.monotonic() + 30
        while True:  # listening once a connection succeeds
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {self.proc.returncode} before listening")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} does not listen on port {port}")
            time.sleep(0.02)

    def new_lines(self):
        """Lines stamped since the last call: (monotonic ns, text)."""
        with open(self.stamp_file) as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind("\n") + 1
        self.offset += len(data[:end].encode())
        out = []
        for raw in data[:end].splitlines():
            stamp, _, text = raw.partition("\t")
            out.append((int(stamp), text))
        return out

    def rss(self):
        with open(f"/proc/{self.proc.pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stamper.wait(timeout=15)
        os.unlink(self.stamp_file)
        return self.proc.returncode


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(port, path, rid):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nX-Request-Id: {rid}\r\n\r\n".encode())
    return s


def abort(s, rst):
    if rst:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def wait_lines(server, predicate, count, timeout, collected=None):
    """Collects stamped lines until `count` of them satisfy `predicate` (given a
    greetd_format.LogLine); returns those as (stamp, LogLine)."""
    found = collected if collected is not None else []
    deadline = time.monotonic() + timeout
    while len(found) < count and time.monotonic() < deadline:
        for stamp, text in server.new_lines():
            line = parse_line(text)
            if line and predicate(line):
                found.append((stamp, line))
        time.sleep(0.01)
    return found


# -- 1. cancel latency --------------------------------------------------------------------------

def cancel_sequential(server, n):
    arrival, logged = [], []
    for i in range(n):
        rid = f"s{i}"
        s = connect(server.port, "/?delay=60s", rid)
        wait_lines(server, lambda l: l.request_id == rid and l.message == "Handling greeting request", 1, 10)
        time.sleep(0.002)
        t_mono, t_wall = time.monotonic_ns(), time.time_ns()
        abort(s, rst=i % 2 == 1)
        got = wait_lines(server, lambda l: l.request_id == rid and l.message.startswith("Context Error"), 1, 10)
        if got:
            stamp, line = got[0]
            arrival.append((stamp - t_mono) / 1000)
            logged.append((parse_wall(line.time) - t_wall) / 1000)
    return {"arrival_us": arrival, "logged_us": logged, "aborts": n, "seen": len(arrival)}


def cancel_concurrent(server, n):
    socks = {}
    for i in range(n):
        socks[f"c{i}"] = connect(server.port, "/?delay=120s", f"c{i}")
    started = wait_lines(server, lambda l: l.request_id in socks and l.message == "Handling greeting request", n, 60)
    if len(started) < n:
        log(f"  {server.name}: only {len(started)} of {n} greetings started")
    closed = {}
    for i, (rid, s) in enumerate(socks.items()):
        closed[rid] = (time.monotonic_ns(), time.time_ns())
        abort(s, rst=i % 2 == 1)
    got = wait_lines(server, lambda l: l.request_id in closed and l.message.startswith("Context Error"), n, 60)
    arrival = [(stamp - closed[l.request_id][0]) / 1000 for stamp, l in got]
    logged = [(parse_wall(l.time) - closed[l.request_id][1]) / 1000 for _, l in got]
    return {"arrival_us": arrival, "logged_us": logged, "aborts": n, "seen": len(got)}


# -- 2. memory per pending greeting, 3. capacity and tick jitter -------------------------------

def hold_pending(server, n, seconds, tick_lines):
    """Opens up to n pending greetings, holds them `seconds`, returns RSS growth and jitter."""
    for _ in range(100):  # warm up allocator and lazily made structures
        s = connect(server.port, "/?delay=0s", "warm")
        s.recv(4096)
        s.close()
    time.sleep(1.0)
    server.new_lines()
    rss_before = server.rss()
    socks, errors = [], {}
    for i in range(n):
        try:
            socks.append(connect(server.port, "/?delay=300s", f"p{i}"))
        except OSError as e:
            errors[e.__class__.__name__] = errors.get(e.__class__.__name__, 0) + 1
            if len(errors) and sum(errors.values()) > 50:
                break
    started = wait_lines(server, lambda l: l.request_id and l.request_id.startswith("p") and l.message == "Handling greeting request",
                         len(socks), 120) if tick_lines else []
    if not tick_lines:
        time.sleep(2.0)
    start_wall = {l.request_id: parse_wall(l.time) for _, l in started}
    time.sleep(1.0)
    rss_after = server.rss()
    late = []
    if tick_lines:
        # Tick k of a greeting is due k seconds after its `Handling` line: k is the nearest whole
        # second to (t - start), and the lateness t - (start + k s) is signed. A tick may show as
        # slightly early: a server arms its timer from its loop's cached clock, which can be a
        # little behind the clock it stamps the log line with. (Ticks logged while the runner was
        # still opening connections are skipped.)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for _, text in server.new_lines():
                line = parse_line(text)
                if line and line.message == "Greetings are hard. Thinking..." and line.request_id in start_wall:
                    since = parse_wall(line.time) - start_wall[line.request_id]
                    k = max(1, round(since / 1_000_000_000))
                    late.append((since - k * 1_000_000_000) / 1e6)
            time.sleep(0.05)
    # Are they all still open? A reset or a close from the server is an error.
    dead = 0
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(1, socket.MSG_PEEK) == b"":
                dead += 1
        except BlockingIOError:
            pass
        except OSError:
            dead += 1
    for s in socks:
        s.close()
    held = len(socks) - dead
    return {
        "asked": n, "opened": len(socks), "held": held, "errors": errors, "dead": dead,
        "rss_before": rss_before, "rss_after": rss_after,
        "bytes_per_pending": (rss_after - rss_before) / max(1, len(socks)),
        "tick_late_ms": late,
    }


# -- 4. fast path ---------------------------------------------------------------------------------

def fast_path(port, seconds):
    out = subprocess.run(["wrk", "-t1", "-c64", f"-d{seconds}s", f"http://127.0.0.1:{port}/?delay=0s"],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "non2xx": int(errors.group(1)) if errors else 0}


# -- 5. abort storm -------------------------------------------------------------------------------

def storm(server, stress, requests, connections):
    time.sleep(2.5)
    rss_before = server.rss()
    proc = subprocess.run([stress, "--port", str(server.port), "--requests", str(requests),
                           "--connections", str(connections), "--abort-after", "50ms-1s",
                           "--path", "/?delay=10s", "--abort-style", "mix", "--json", "--duration", "120s"],
                          capture_output=True, text=True)
    try:
        summary = json.loads(proc.stdout)
    except json.JSONDecodeError:
        summary = {"raw": proc.stdout[-2000:], "stderr": proc.stderr[-2000:]}
    time.sleep(3.0)  # the server trims its heap a second after the last greeting
    rss_after = server.rss()
    return {"exit": proc.returncode, "summary": summary, "rss_before": rss_before, "rss_after": rss_after,
            "alive": server.proc.poll() is None}


# -- servers --------------------------------------------------------------------------------------

def build(quick):
    log("building greetd and greet-stress (release)")
    run(["swift", "build", "-c", "release", "--product", "greetd"])
    run(["swift", "build", "-c", "release", "--product", "greet-stress"])
    os.makedirs(BENCH_BUILD, exist_ok=True)
    have_go = shutil.which("go") is not None
    if have_go:
        log("building the Go reference")
        subprocess.run(["go", "build", "-o", os.path.join(BENCH_BUILD, "go-greetd"), "."],
                       cwd=os.path.join(ROOT, "Benchmarks", "go-greetd"), check=True)
    else:
        log("go is not installed (apt-get install golang-go): the Go reference is skipped")
    log("building the C evhttp floor")
    run(["cc", "-O2", "-Wall", "-Wextra", "-o", os.path.join(BENCH_BUILD, "c-evhttp"),
         "Benchmarks/c-evhttp/server.c", "-levent"])
    return have_go


def greetd_cmd(level="info", workers=None, extra=()):
    return lambda port: [os.path.join(ROOT, ".build/release/greetd"), "--host", "127.0.0.1", "--port", str(port),
                         "--log-level", level, "--max-connections", "20000", "--max-delay", "10m"] \
        + (["--workers", str(workers)] if workers else []) + list(extra)


def go_cmd(level="info"):
    return lambda port: [os.path.join(BENCH_BUILD, "go-greetd"), "--host", "127.0.0.1", "--port", str(port),
                         "--log-level", level, "--max-delay", "10m"]


def c_cmd():
    return lambda port: [os.path.join(BENCH_BUILD, "c-evhttp"), "--host", "127.0.0.1", "--port", str(port)]


def machine():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    swift = subprocess.run(["swift", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    go = subprocess.run(["go", "version"], capture_output=True, text=True).stdout.strip() if shutil.which("go") else "not installed"
    libevent = subprocess.run(["pkg-config", "--modversion", "libevent"], capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem, 1), "kernel": platform.release(),
            "swift": swift, "go": go, "libevent": libevent,
            "fd_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def measure(args, have_go):
    results = {"machine": machine(), "quick": args.quick}
    n_seq = 100 if args.quick else 200
    n_conc = 300 if args.quick else 2000
    n_mem = 1000 if args.quick else 10000
    n_cap = 2000 if args.quick else min(19000, results["machine"]["fd_limit"] - 500)
    hold = 3 if args.quick else 6
    wrk_s = 2 if args.quick else 5
    n_storm = 1000 if args.quick else 10000

    servers = [("greetd", lambda level="info": greetd_cmd(level))]
    if have_go:
        servers.append(("go", lambda level="info": go_cmd(level)))
    for name, cmd in servers:
        r = results.setdefault(name, {})
        log(f"{name}: cancel latency, {n_seq} aborts one at a time")
        srv = Server(name, cmd())
        r["cancel_sequential"] = cancel_sequential(srv, n_seq)
        log(f"{name}: cancel latency, {n_conc} concurrent aborts")
        r["cancel_concurrent"] = cancel_concurrent(srv, n_conc)
        srv.stop()
        log(f"{name}: memory per pending greeting, {n_mem} held")
        srv = Server(name, cmd("warning"))
        r["memory"] = hold_pending(srv, n_mem, 0, tick_lines=False)
        srv.stop()
        log(f"{name}: capacity and tick jitter, up to {n_cap} held for {hold}s")
        srv = Server(name, cmd())
        r["capacity"] = hold_pending(srv, n_cap, hold, tick_lines=True)
        srv.stop()
        log(f"{name}: fast path")
        srv = Server(name, cmd("warning"))
        r["fast_path"] = fast_path(srv.port, wrk_s)
        srv.stop()

    log("greetd (1 worker): fast path")
    srv = Server("greetd-1", greetd_cmd("warning", workers=1))
    results["greetd"]["fast_path_1_worker"] = fast_path(srv.port, wrk_s)
    srv.stop()
    log("C evhttp: fast path and memory per pending request")
    srv = Server("c-evhttp", c_cmd())
    results["c_evhttp"] = {"fast_path": fast_path(srv.port, wrk_s)}
    srv.stop()
    srv = Server("c-evhttp", c_cmd())
    results["c_evhttp"]["memory"] = hold_pending(srv, n_mem, 0, tick_lines=False)
    srv.stop()

    log(f"greetd: abort storm, {n_storm} requests with greet-stress")
    srv = Server("greetd", greetd_cmd("warning"))
    results["greetd"]["storm"] = storm(srv, os.path.join(ROOT, ".build/release/greet-stress"), n_storm, 2000 if not args.quick else 300)
    results["greetd"]["storm"]["exit_code"] = srv.stop()
    return results


# -- summary -------------------------------------------------------------------------------------

# The quantiles kept for a distribution the chart draws: every percent, and per mille in the tail.
CHART_QUANTILES = [float(p) for p in range(100)] + [99 + k / 10 for k in range(1, 10)] + [100.0]
SAMPLE_KEYS = ("arrival_us", "logged_us", "tick_late_ms")


def sample_summary(values, quantiles=False):
    """A list of samples as a few numbers: n, p50, p99, max (and the chart's quantiles)."""
    if not values:
        return {"n": 0}
    out = {"n": len(values), "p50": round(percentile(values, 50), 3), "p99": round(percentile(values, 99), 3),
           "max": round(max(values), 3)}
    if quantiles:
        out["quantiles"] = [[q, round(percentile(values, q), 1)] for q in CHART_QUANTILES]
    return out


def summarize_results(results):
    """The committed summary of a run: the raw results with every list of samples replaced by its
    sample_summary (the concurrent cancel latencies keep the quantiles the chart is drawn from)."""
    def walk(node, path):
        if isinstance(node, dict):
            return {k: walk(v, path + (k,)) for k, v in node.items()}
        if isinstance(node, list) and path and path[-1] in SAMPLE_KEYS:
            return sample_summary(node, quantiles=path[-2:] == ("cancel_concurrent", "arrival_us"))
        return node
    summary = walk(results, ())
    summary["summary_of"] = "Benchmarks/results/raw.json (every sample; not committed)"
    return summary


def summary_json(summary):
    """The summary as JSON, one key a line, but each list of numbers on one line (a few KB)."""
    text = json.dumps(summary, indent=1, ensure_ascii=False)
    flat = re.sub(r"\[\s+([-0-9.eE, \n]*?)\s+\]", lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]", text)
    return flat + "\n"


# -- report ---------------------------------------------------------------------------------------

NAN = float("nan")


def stat(summary, key):
    """One figure of a sample_summary, NaN when there were no samples."""
    value = summary.get(key) if summary else None
    return NAN if value is None else value


def fmt_us(v):
    if v != v:
        return "n/a"
    return f"{v / 1000:.2f} ms" if v >= 1000 else f"{v:.0f} µs"


def ratio(a, b, higher_is_better=False):
    if not a or not b or a != a or b != b:
        return "n/a"
    return f"{(a / b):.2f}×"


def verdict(ok):
    """The `met` column: met, missed, or n/a when the figure is missing."""
    if ok is None:
        return "n/a"
    return "met" if ok else "**missed**"


def chart(results, path):
    """An SVG of the concurrent cancel-latency distributions (CDF), hand-drawn: no matplotlib here.
    Drawn from the summary's quantiles."""
    series = []
    for name, color in (("greetd", "#d9480f"), ("go", "#1c7ed6")):
        if name in results:
            summary = results[name]["cancel_concurrent"]["arrival_us"]
            if summary.get("quantiles"):
                series.append((name, color, summary))
    width, height, left, bottom, top, right = 720, 420, 70, 50, 30, 20
    def p999(summary):
        return next(v for q, v in summary["quantiles"] if q >= 99.9)
    xmax = max(p999(sm) for _, _, sm in series) * 1.1 if series else 1
    def x(v):
        return left + (width - left - right) * min(v, xmax) / xmax
    def y(p):
        return height - bottom - (height - bottom - top) * p
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="14">Cancel latency, '
             f'{results["greetd"]["cancel_concurrent"]["aborts"]} concurrent aborts (close() to the Context Error line)</text>']
    for i in range(6):
        v = xmax * i / 5
        parts.append(f'<line x1="{x(v)}" y1="{y(0)}" x2="{x(v)}" y2="{y(1)}" stroke="#eee"/>')
        parts.append(f'<text x="{x(v)}" y="{y(0) + 16}" text-anchor="middle">{fmt_us(v)}</text>')
    for p in (0, 0.25, 0.5, 0.75, 0.9, 1):
        parts.append(f'<line x1="{left}" y1="{y(p)}" x2="{width - right}" y2="{y(p)}" stroke="#eee"/>')
        parts.append(f'<text x="{left - 6}" y="{y(p) + 4}" text-anchor="end">{int(p * 100)}%</text>')
    parts.append(f'<text x="{width / 2}" y="{height - 10}" text-anchor="middle">latency (fraction of aborts at or below)</text>')
    for k, (name, color, summary) in enumerate(series):
        points = " ".join(f"{x(v):.1f},{y(q / 100):.1f}" for q, v in summary["quantiles"])
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>')
        parts.append(f'<rect x="{left + 20}" y="{top + 10 + k * 18}" width="12" height="12" fill="{color}"/>')
        parts.append(f'<text x="{left + 38}" y="{top + 21 + k * 18}">{name}: p50 {fmt_us(stat(summary, "p50"))}, '
                     f'p99 {fmt_us(stat(summary, "p99"))}</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


def report(results, out_path, chart_path):
    """BENCHMARKS.md from the summary: one row per figure, with its target and whether it was met."""
    g = results["greetd"]
    go = results.get("go")
    c = results.get("c_evhttp", {})
    m = results["machine"]

    def lat(r, key, field="arrival_us"):
        return r[key][field] if r else None

    rows = []
    for label, key in (("one at a time", "cancel_sequential"), ("concurrent", "cancel_concurrent")):
        gs, gos = lat(g, key), lat(go, key)
        n = g[key]["aborts"]
        for name in ("p50", "p99", "max"):
            a, b = stat(gs, name), stat(gos, name)
            target, met = "", ""
            if key == "cancel_concurrent" and name == "p99":
                target = "p99 ≤ 1 ms and ≤ Go"
                met = verdict(None if a != a else a <= 1000 and (not gos or a <= b))
            rows.append((f"Cancel latency, {n} aborts {label}, {name}", fmt_us(a),
                         fmt_us(b) if gos else "n/a", ratio(a, b) if gos else "n/a", target, met))
    per = g["memory"]["bytes_per_pending"]
    rows.append(("Memory per pending greeting", f"{per:.0f} B",
                 f"{go['memory']['bytes_per_pending']:.0f} B" if go else "n/a",
                 ratio(per, go['memory']['bytes_per_pending']) if go else "n/a", "≤ 3 KB (3,072 B)", verdict(per <= 3072)))
    if c.get("memory"):
        rows.append(("Memory per pending request, raw C evhttp (no abort watch)", f"{c['memory']['bytes_per_pending']:.0f} B",
                     "", "", "floor", ""))
    late_g = g["capacity"]["tick_late_ms"]
    late_go = go["capacity"]["tick_late_ms"] if go else {}
    rows.append(("Capacity: pending greetings held", f"{g['capacity']['held']} of {g['capacity']['asked']}",
                 f"{go['capacity']['held']} of {go['capacity']['asked']}" if go else "n/a", "", "19,000",
                 verdict(g["capacity"]["held"] >= 19000)))
    p99 = stat(late_g, "p99")
    rows.append(("Tick lateness while holding them, p50 / p99 / max",
                 f"{stat(late_g, 'p50'):.1f} / {p99:.1f} / {stat(late_g, 'max'):.1f} ms",
                 f"{stat(late_go, 'p50'):.1f} / {stat(late_go, 'p99'):.1f} / {stat(late_go, 'max'):.1f} ms" if go else "n/a",
                 ratio(p99, stat(late_go, "p99")) if go else "n/a", "p99 < 10 ms", verdict(None if p99 != p99 else p99 < 10)))
    rps = g["fast_path"]["rps"]
    rows.append(("Fast path, wrk -t1 -c64, requests/s (default workers)", f"{rps:.0f}",
                 f"{go['fast_path']['rps']:.0f}" if go else "n/a",
                 ratio(rps, go['fast_path']['rps']) if go else "n/a", "≥ Go",
                 verdict(rps >= go["fast_path"]["rps"] if go else None)))
    rows.append(("Fast path, greetd with 1 worker", f"{g['fast_path_1_worker']['rps']:.0f}", "", "", "", ""))
    if c.get("fast_path"):
        rows.append(("Fast path, raw C evhttp (floor)", f"{c['fast_path']['rps']:.0f}", "", "", "", ""))
    st = g["storm"]
    s = st["summary"]
    checks = s.get("checks", []) if isinstance(s, dict) else []
    rows.append(("Abort storm (greet-stress): requests, aborted, exit code",
                 f"{s.get('requests', '?')}, {s.get('aborted', '?')}, {st['exit']}", "", "", "exit 0", verdict(st["exit"] == 0)))
    rows.append(("Abort storm: RSS before → peak → after", f"{st['rss_before'] / 2**20:.1f} → "
                 f"{(s.get('rss_peak') or 0) / 2**20:.1f} → {st['rss_after'] / 2**20:.1f} MiB", "", "",
                 "after within 10% of before", verdict(st["rss_after"] <= 1.10 * st["rss_before"])))
    missed = [r[0] for r in rows if r[5] == verdict(False)]

    lines = [
        "# Benchmarks",
        "",
        "Written by `python3 Benchmarks/run.py` (the whole file is regenerated; edit the runner, not this).",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}, open-file limit {m['fd_limit']}",
        f"- Software: {m['swift']}; {m['go']}; libevent {m['libevent']}",
        f"- Date: {m['date']}{' (quick run: small counts)' if results.get('quick') else ''}",
        "",
        "| figure | greetd | Go net/http | greetd / Go | target | met |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {cc} | {d} | {e} | {f} |" for a, b, cc, d, e, f in rows]
    lines += ["", f"Targets missed: {len(missed)} of {sum(1 for r in rows if r[4] and r[4] != 'floor')}"
              + (" (" + "; ".join(missed) + ")." if missed else ".")]
    lines += [
        "",
        f"![cancel latency distributions]({os.path.basename(chart_path)})",
        "",
        "## How each figure is measured",
        "",
        "- **Cancel latency.** The runner opens a connection, sends `GET /?delay=60s` with an",
        "  `X-Request-Id`, waits for the server's `Handling greeting request` line, then closes the socket",
        "  (FIN, or RST through `SO_LINGER 0`, alternating) and records `CLOCK_MONOTONIC` just before",
        "  `close()`. A separate reader process stamps every stderr line with `CLOCK_MONOTONIC` on arrival;",
        "  the latency is arrival minus close. Both servers write each log line with one unbuffered `write`.",
        "  \"Concurrent\": all greetings are started first, then every socket is closed in one tight loop.",
        "- **Memory per pending greeting.** RSS (`/proc/PID/statm`) after 100 warm-up requests, then N",
        "  greetings held open (`?delay=300s`), then RSS again; the growth divided by N. Logs at `warning`.",
        "- **Capacity and tick jitter.** As many pending greetings as the fd limit allows (the runner and the",
        "  server each need one descriptor per connection), held for a few seconds at `--tick 1s`. Lateness",
        "  of tick *k* is its log timestamp minus (the `Handling` timestamp + *k* seconds), from the servers'",
        "  own µs log timestamps. \"Held\" counts connections the server had neither closed nor reset.",
        "- **Fast path.** `wrk -t1 -c64 -d5s http://127.0.0.1:PORT/?delay=0s`, logs at `warning`.",
        "- **Abort storm.** `greet-stress` with 2,000 connections and 10,000 requests that abort after",
        "  50 ms–1 s (FIN, RST, half-close mixed); it checks greetd's `/metrics` (canceled grew by exactly",
        "  the aborts, in-flight back to its start) and exits 0 only if all checks hold. RSS is read before",
        "  the storm and 3 s after it.",
        "- The chart is drawn by the runner itself (SVG, no plotting library): the cumulative distribution",
        "  of the concurrent cancel latencies for both servers.",
        "",
        "A summary of the last run (percentiles, the chart's quantiles): `Benchmarks/results/latest.json`;",
        "every sample: `Benchmarks/results/raw.json` (written by each run, not committed).",
    ]
    if checks:
        lines += ["", "### greet-stress checks in the abort storm", "", "| check | expected | actual | ok |", "|---|---|---|---|"]
        lines += [f"| {ch.get('name')} | {ch.get('expected')} | {ch.get('actual')} | {'yes' if ch.get('ok') else 'NO'} |" for ch in checks]
    with open(out_path, "w") as f:
        f.write("\n".join(lines) + "\n")


def output_paths(quick, out=None):
    """Where a run writes. A quick run writes only under .build-bench/quick/ (git-ignored): its
    small counts must never replace the tracked BENCHMARKS.md, chart or summary."""
    if quick:
        directory = os.path.join(BENCH_BUILD, "quick")
        results = directory
        default_out = os.path.join(directory, "BENCHMARKS.md")
        chart_path = os.path.join(directory, "cancel-latency.svg")
    else:
        results = os.path.join(ROOT, "Benchmarks", "results")
        default_out = os.path.join(ROOT, "BENCHMARKS.md")
        chart_path = os.path.join(ROOT, "Benchmarks", "cancel-latency.svg")
    return {"report": out or default_out, "chart": chart_path,
            "summary": os.path.join(results, "latest.json"), "raw": os.path.join(results, "raw.json")}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="small counts, to check the runner; writes under .build-bench/quick/ only")
    ap.add_argument("--skip-build", action="store_true")
    ap.add_argument("--out", default=None,
                    help="the report (default: BENCHMARKS.md; .build-bench/quick/BENCHMARKS.md with --quick)")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite the report and the chart from the summary (Benchmarks/results/latest.json, "
                         "or the quick one with --quick), measuring nothing")
    args = ap.parse_args()
    paths = output_paths(args.quick, args.out)
    if args.report_only:
        with open(paths["summary"]) as f:
            summary = json.load(f)
        chart(summary, paths["chart"])
        report(summary, paths["report"], paths["chart"])
        return
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install -y wrk")
    raise_fd_limit()
    have_go = shutil.which("go") is not None
    if not args.skip_build:
        have_go = build(args.quick)
    elif have_go and not os.path.exists(os.path.join(BENCH_BUILD, "go-greetd")):
        have_go = False
    results = measure(args, have_go)
    os.makedirs(os.path.dirname(paths["summary"]), exist_ok=True)
    with open(paths["raw"], "w") as f:
        json.dump(results, f)
    summary = summarize_results(results)
    with open(paths["summary"], "w") as f:
        f.write(summary_json(summary))
    chart(summary, paths["chart"])
    report(summary, paths["report"], paths["chart"])
    log("wrote " + ", ".join(os.path.relpath(paths[k], ROOT) for k in ("report", "chart", "summary", "raw")))


if __name__ == "__main__":
    main()
