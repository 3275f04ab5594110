#!/usr/bin/env python3
"""greetd's benchmark suite: every figure of issues 10 and 9, beside Go and the raw evhttp floor.

One command, from the repository root:

    python3 Benchmarks/run.py                 # full run: rewrites BENCHMARKS.md, the chart, the summary
    python3 Benchmarks/run.py --rounds 5      # more alternating rounds per figure (default 3)
    python3 Benchmarks/run.py --quick         # 1 round, small counts, to check the runner; writes
                                              # only under .build-bench/quick/, never the tracked files
    python3 Benchmarks/run.py --quick --smoke # CI's smoke run (< 60 s, no build): fails only on a
                                              # broken run, never on a missed target
    python3 Benchmarks/run.py --report-only   # the report and chart again, from the summary

It builds greetd, greet-stress and executor-bench in release mode, the Go reference
(Benchmarks/go-greetd, when `go` is installed; without it the Go figures are "not measured"), the
C evhttp floor (Benchmarks/c-evhttp) and Hummingbird 2, the reference for the async figures
(Benchmarks/hummingbird/hb-greet, a package of its own, built from the local package copies; when
they don't resolve or build, and always with --smoke, its figures are "not measured" and the
report says why). Every figure is measured in alternating rounds (greetd,
Go, greetd, Go, ...: each variant of a figure once per round, a fresh server each time) and
reported as the median over rounds of each round's figure. Loopback only, bounded in count and
time; it stops every server it starts.

Issue 10 (this file): fast path against Go and against raw evhttp on one loop (with and without
the epoll changelist), memory per pending greeting against the raw floor, cancel latency (aborts
spread over 3 s, and all at once), RSS after an abort storm, capacity with tick lateness.
Issue 9 (Benchmarks/stream-bench.py, imported): the async handler and the streaming greeting
(they add variants to the same rounds), and the executor overhead (executor-bench's table).
Issue 15 (this file): the async hello and memory per pending async request against Hummingbird 2.

Outputs: BENCHMARKS.md, Benchmarks/cancel-latency.svg, Benchmarks/results/latest.json (a summary:
per-round figures and medians, a few KB, committed); Benchmarks/results/raw.json (every sample,
git-ignored). With --quick, all four under .build-bench/quick/ (with --smoke, .build-bench/smoke/).
"""
import argparse
import datetime
import importlib.util
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

sys.modules.setdefault("run", sys.modules[__name__])  # stream-bench.py's `from run import` reuses this module
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from greetd_format import parse_line, parse_time_ns as parse_wall  # noqa: E402  greetd's log-line format

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_BUILD = os.path.join(ROOT, ".build-bench")
RELEASE = os.path.join(ROOT, ".build", "release")
# Hummingbird 2, the async reference: a package of its own, with its own (git-ignored) .build/.
HB_PACKAGE = os.path.join(ROOT, "Benchmarks", "hummingbird", "hb-greet")
HB_BIN = os.path.join(HB_PACKAGE, ".build", "release", "hb-greet")
NAN = float("nan")

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


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def percentile(values, p):
    if not values:
        return NAN
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, int(round(p / 100 * (len(ordered) - 1)))))
    return ordered[k]


def median(values):
    values = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v]
    return statistics.median(values) if values else NAN


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process whose stderr goes through the stamper into a file."""

    def __init__(self, name, make_cmd, env=None):
        self.name = name
        self.port = free_port()
        self.stamp_file = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log", delete=False).name
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen(make_cmd(self.port), cwd=ROOT, stderr=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, env=full_env)
        self.stamper = subprocess.Popen([sys.executable, "-c", STAMPER, self.stamp_file], stdin=self.proc.stderr)
        self.proc.stderr.close()
        self.offset = 0
        deadline = time.monotonic() + 30
        while True:  # listening once a connection succeeds
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {self.proc.returncode} before listening")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} does not listen on port {self.port}")
            time.sleep(0.02)

    def new_lines(self):
        """Lines stamped since the last call: (monotonic ns, text)."""
        with open(self.stamp_file, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        out = []
        for raw in data[:end].decode(errors="replace").splitlines():
            stamp, _, text = raw.partition("\t")
            out.append((int(stamp), text))
        return out

    def rss(self):
        with open(f"/proc/{self.proc.pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """Stops the server (SIGINT, then SIGKILL after 15 s); its exit code."""
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
        if len(found) < count:
            time.sleep(0.01)
    return found


def open_pending(port, path, headers="", rid="bench"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nX-Request-Id: {rid}\r\n{headers}\r\n".encode())
    return s


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


def drain(s):
    """Reads what the server sent (a stream's head and events), so that close() sends a FIN, not
    the RST Linux sends for a close with unread bytes."""
    s.setblocking(False)
    try:
        while s.recv(65536):
            pass
    except OSError:
        pass


# -- servers --------------------------------------------------------------------------------------

def greetd_cmd(level="info", workers=None, tick="1s"):
    # No access log: the references (Go, raw evhttp) log nothing per request, and the figures
    # compare the serving, not the logging (greetd writes access lines at every --log-level).
    return lambda port: [os.path.join(RELEASE, "greetd"), "--host", "127.0.0.1", "--port", str(port),
                         "--log-level", level, "--tick", tick, "--max-connections", "20000", "--max-delay", "10m",
                         "--access-log", "off"] \
        + (["--workers", str(workers)] if workers else [])


def go_cmd(level="info", tick="1s"):
    return lambda port: [os.path.join(BENCH_BUILD, "go-greetd"), "--host", "127.0.0.1", "--port", str(port),
                         "--log-level", level, "--tick", tick, "--max-delay", "10m"]


def c_cmd():
    return lambda port: [os.path.join(BENCH_BUILD, "c-evhttp"), "--host", "127.0.0.1", "--port", str(port)]


def hb_cmd():
    # Hummingbird 2 as shipped: its default event loops (one per core), logs at warning.
    return lambda port: [HB_BIN, "--host", "127.0.0.1", "--port", str(port)]


# libevent reads this at event_base_new(): the epoll changelist (2 epoll_ctl per request, not 4).
CHANGELIST = {"EVENT_EPOLL_USE_CHANGELIST": "1"}


def with_server(name, cmd, fn, env=None):
    """A variant: a fresh server for one round of one figure; fn(server) -> the round's figures,
    plus the server's exit code (and whether it was still alive at the end)."""
    def variant():
        srv = Server(name, cmd, env)
        try:
            out = fn(srv)
            out["alive"] = srv.alive()
        finally:
            code = srv.stop()
        out["exit"] = code
        return out
    return variant


# -- fast path ------------------------------------------------------------------------------------

def wrk(port, path, seconds):
    out = subprocess.run(["wrk", "-t1", "-c64", f"-d{seconds}s", f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True, check=True).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "non2xx": int(non2xx.group(1)) if non2xx else 0}


# -- cancel latency -------------------------------------------------------------------------------

def cancel_latency(srv, n, spread_s, path, headers="", tag="c"):
    """n pending greetings, then their aborts spread evenly over spread_s (0: all in one tight
    loop), FIN and RST alternating: close() -> the `Context Error` line's arrival, in µs."""
    socks = {f"{tag}{i}": open_pending(srv.port, path, headers, f"{tag}{i}") for i in range(n)}
    started = wait_lines(srv, lambda l: l.request_id in socks and l.message == "Handling greeting request", n, 120)
    if len(started) < n:
        log(f"  {srv.name}: only {len(started)} of {n} started")
    closed = {}
    start = time.monotonic() + 0.05
    for i, (rid, s) in enumerate(socks.items()):
        due = start + spread_s * i / n
        while (now := time.monotonic()) < due:
            time.sleep(min(0.001, due - now))
        drain(s)
        if i % 2:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        closed[rid] = time.monotonic_ns()
        s.close()
    got = wait_lines(srv, lambda l: l.request_id in closed and l.message.startswith("Context Error"), n, 60)
    samples = [(stamp - closed[l.request_id]) / 1000 for stamp, l in got]
    return {"n": n, "seen": len(got), "p50_us": percentile(samples, 50), "p99_us": percentile(samples, 99),
            "max_us": max(samples) if samples else NAN, "samples_us": samples}


# -- memory per pending greeting ------------------------------------------------------------------

def settled_rss(srv, timeout):
    """RSS once it has stopped moving (unchanged within 0.5% over 1 s), or after timeout."""
    deadline = time.monotonic() + timeout
    last, since = srv.rss(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = srv.rss()
        if abs(now - last) > 0.005 * last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= 1.0:
            break
    return last


def memory_per_pending(srv, n, path, headers="", warm="/?delay=0s"):
    """RSS growth / n with n greetings pending (logs at warning, no tick during the hold); the
    warm-up requests go to `warm` (the same route as `path`, answering at once)."""
    for _ in range(100):  # warm-up: allocator, lazily made structures
        exchange(srv.port, warm, headers)
    before = settled_rss(srv, 10)
    socks = [open_pending(srv.port, path, headers, f"m{i}") for i in range(n)]
    time.sleep(0.5)
    after = settled_rss(srv, 30)
    dead = sum(1 for s in socks if peer_closed(s))
    for s in socks:
        s.close()
    return {"n": n, "held": n - dead, "rss_before": before, "rss_after": after, "bytes_per_pending": (after - before) / n}


def peer_closed(s):
    s.setblocking(False)
    try:
        return s.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


# -- capacity and tick lateness -------------------------------------------------------------------

def capacity(srv, n, hold_s):
    """Up to n pending greetings held hold_s at --tick 1s: how many stay open, and how late their
    ticks are. Tick k of a greeting is due k s after its `Handling` line (both the server's own µs
    timestamps); lateness is signed: negative is early. Ticks logged while the runner was still
    opening connections are skipped."""
    socks, errors = [], {}
    for i in range(n):
        try:
            socks.append(open_pending(srv.port, "/?delay=300s", "", f"p{i}"))
        except OSError as e:
            errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
            if sum(errors.values()) > 50:
                break
    started = wait_lines(srv, lambda l: l.request_id and l.request_id.startswith("p")
                         and l.message == "Handling greeting request", len(socks), 120)
    start_wall = {l.request_id: parse_wall(l.time) for _, l in started}
    late = []
    deadline = time.monotonic() + hold_s
    while time.monotonic() < deadline:
        for _, text in srv.new_lines():
            line = parse_line(text)
            if line and line.message == "Greetings are hard. Thinking..." and line.request_id in start_wall:
                since = parse_wall(line.time) - start_wall[line.request_id]
                k = max(1, round(since / 1_000_000_000))
                late.append((since - k * 1_000_000_000) / 1e6)
        time.sleep(0.05)
    dead = sum(1 for s in socks if peer_closed(s))
    for s in socks:
        s.close()
    return {"asked": n, "opened": len(socks), "held": len(socks) - dead, "errors": errors, "ticks": len(late),
            "tick_p50_ms": percentile(late, 50), "tick_p99_ms": percentile(late, 99),
            "tick_min_ms": min(late) if late else NAN, "tick_max_ms": max(late) if late else NAN,
            "samples_ms": late}


# -- abort storm and RSS after it -----------------------------------------------------------------

def storm(srv, requests, connections, settle_s, recover_s=5.0):
    """greet-stress aborts `requests` greetings at random (FIN, RST, half-close); then RSS is polled
    for up to recover_s until it is back within 10% of its pre-storm figure."""
    time.sleep(settle_s)
    before = srv.rss()
    proc = subprocess.run([os.path.join(RELEASE, "greet-stress"), "--port", str(srv.port), "--requests", str(requests),
                           "--connections", str(connections), "--abort-after", "50ms-1s", "--path", "/?delay=10s",
                           "--abort-style", "mix", "--json", "--duration", "120s"], capture_output=True, text=True)
    try:
        summary = json.loads(proc.stdout)
    except json.JSONDecodeError:
        summary = {"stdout": proc.stdout[-500:], "stderr": proc.stderr[-500:]}
    ended = time.monotonic()
    recovered, after = None, srv.rss()
    while True:
        after = srv.rss()
        if after <= 1.10 * before:
            recovered = time.monotonic() - ended
            break
        if time.monotonic() - ended >= recover_s:
            break
        time.sleep(0.05)
    checks = summary.get("checks", []) if isinstance(summary, dict) else []
    return {"stress_exit": proc.returncode, "requests": summary.get("requests"), "aborted": summary.get("aborted"),
            "checks_failed": [c.get("name") for c in checks if not c.get("ok")], "rss_before": before,
            "rss_peak": summary.get("rss_peak"), "rss_after": after, "recovered_s": recovered}


# -- executor overhead (issue 9) ------------------------------------------------------------------

def executor_bench(jobs, repeats):
    """executor-bench's table (LoopExecutor beside a serial DispatchQueue): its lines, as printed."""
    out = subprocess.run([os.path.join(RELEASE, "executor-bench"), "--jobs", str(jobs), "--repeats", str(repeats)],
                         capture_output=True, text=True, check=True, timeout=900).stdout
    return {"jobs": jobs, "repeats": repeats, "lines": out.rstrip("\n").splitlines()}


# -- the run --------------------------------------------------------------------------------------

def counts(quick, smoke, fd_limit):
    if smoke:
        return {"cancel": 40, "spread_s": 0.3, "memory": 300, "capacity": 300, "hold_s": 1.5, "wrk_s": 1,
                "storm": 300, "storm_connections": 100, "settle_s": 0.5, "executor_jobs": 20000, "executor_repeats": 1}
    if quick:
        return {"cancel": 300, "spread_s": 3.0, "memory": 1000, "capacity": 2000, "hold_s": 3, "wrk_s": 2,
                "storm": 1000, "storm_connections": 300, "settle_s": 1.0, "executor_jobs": 100000, "executor_repeats": 1}
    return {"cancel": 2000, "spread_s": 3.0, "memory": 10000, "capacity": min(19000, fd_limit - 500), "hold_s": 6,
            "wrk_s": 5, "storm": 10000, "storm_connections": 2000, "settle_s": 2.5, "executor_jobs": 1000000,
            "executor_repeats": 5}


def variants(c, have_go, have_hb=False):
    """Issue 10's variants of each figure, as {figure: [(name, fn)]}, Go's after greetd's; and
    issue 15's: Hummingbird 2 (when built) in the fast path, and memory per pending async request
    (greetd's async handler against Hummingbird's, in a figure of their own)."""
    pending = "/?delay=120s"
    g = {
        "fast_path": [("greetd", with_server("greetd", greetd_cmd("warning"), lambda s: wrk(s.port, "/?delay=0s", c["wrk_s"])))],
        "fast_path_1": [
            ("greetd_1_worker", with_server("greetd-1", greetd_cmd("warning", workers=1), lambda s: wrk(s.port, "/?delay=0s", c["wrk_s"]))),
            ("c_evhttp_changelist", with_server("c-evhttp", c_cmd(), lambda s: wrk(s.port, "/?delay=0s", c["wrk_s"]), CHANGELIST)),
            ("c_evhttp", with_server("c-evhttp", c_cmd(), lambda s: wrk(s.port, "/?delay=0s", c["wrk_s"])))],
        "memory": [
            ("greetd", with_server("greetd", greetd_cmd("warning", tick="10m"), lambda s: memory_per_pending(s, c["memory"], pending))),
            ("c_evhttp", with_server("c-evhttp", c_cmd(), lambda s: memory_per_pending(s, c["memory"], pending)))],
        "cancel_spread": [("greetd", with_server("greetd", greetd_cmd(), lambda s: cancel_latency(s, c["cancel"], c["spread_s"], pending, "", "t")))],
        "cancel_at_once": [("greetd", with_server("greetd", greetd_cmd(), lambda s: cancel_latency(s, c["cancel"], 0, pending, "", "c")))],
        "capacity": [("greetd", with_server("greetd", greetd_cmd(), lambda s: capacity(s, c["capacity"], c["hold_s"])))],
        "storm": [("greetd", with_server("greetd", greetd_cmd("warning"),
                                         lambda s: storm(s, c["storm"], c["storm_connections"], c["settle_s"])))],
    }
    if have_go:
        g["fast_path"].append(("go", with_server("go", go_cmd("warning"), lambda s: wrk(s.port, "/?delay=0s", c["wrk_s"]))))
        g["memory"].append(("go", with_server("go", go_cmd("warning", tick="10m"), lambda s: memory_per_pending(s, c["memory"], pending))))
        g["cancel_spread"].append(("go", with_server("go", go_cmd(), lambda s: cancel_latency(s, c["cancel"], c["spread_s"], pending, "", "t"))))
        g["cancel_at_once"].append(("go", with_server("go", go_cmd(), lambda s: cancel_latency(s, c["cancel"], 0, pending, "", "c"))))
        g["capacity"].append(("go", with_server("go", go_cmd(), lambda s: capacity(s, c["capacity"], c["hold_s"]))))
    # Issue 15. The greetd side of the async hello is stream-bench.py's fast_path/greetd_async
    # (`/?async=1&delay=0s`), in the same rounds as Hummingbird's.
    g["async_memory"] = [("greetd_async", with_server("greetd", greetd_cmd("warning", tick="10m"), lambda s: memory_per_pending(
        s, c["memory"], "/?async=1&delay=120s", warm="/?async=1&delay=0s")))]
    if have_hb:
        g["fast_path"].append(("hummingbird", with_server("hummingbird", hb_cmd(), lambda s: wrk(s.port, "/?delay=0s", c["wrk_s"]))))
        g["async_memory"].append(("hummingbird", with_server("hummingbird", hb_cmd(), lambda s: memory_per_pending(s, c["memory"], pending))))
    return g


def stream_bench():
    """Benchmarks/stream-bench.py, issue 9's half, as a module."""
    spec = importlib.util.spec_from_file_location("stream_bench", os.path.join(ROOT, "Benchmarks", "stream-bench.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure(args, have_go, hb):
    m = machine()
    c = counts(args.quick, args.smoke, m["fd_limit"])
    n_rounds = 1 if args.quick else args.rounds
    groups = variants(c, have_go, hb["measured"])
    for figure, extra in stream_bench().variants(c, have_go).items():
        groups.setdefault(figure, []).extend(extra)
    results = {"machine": m, "quick": args.quick, "smoke": args.smoke, "rounds": n_rounds, "counts": c,
               "go_measured": have_go, "hummingbird": hb, "figures": {}}
    for figure, group in groups.items():
        log(f"{figure}: {', '.join(name for name, _ in group)}; {n_rounds} alternating round(s)")
        out = {name: [] for name, _ in group}
        for r in range(n_rounds):
            for name, fn in group:
                out[name].append(fn())
                log(f"  round {r + 1}/{n_rounds} {name}: {brief(out[name][-1])}")
        results["figures"][figure] = out
    log(f"executor-bench --jobs {c['executor_jobs']} --repeats {c['executor_repeats']}")
    results["executor"] = executor_bench(c["executor_jobs"], c["executor_repeats"])
    return results


def brief(r):
    keys = ("rps", "p99_us", "bytes_per_pending", "held", "tick_p99_ms", "rss_after", "recovered_s")
    return ", ".join(f"{k}={r[k]:.1f}" if isinstance(r.get(k), float) else f"{k}={r.get(k)}" for k in keys if k in r)


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
    load = os.getloadavg()
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem, 1), "kernel": platform.release(),
            "swift": swift, "go": go, "libevent": libevent, "load_at_start": [round(x, 2) for x in load],
            "fd_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


# -- summary --------------------------------------------------------------------------------------

# The quantiles kept for the chart: every percent, and per mille in the tail.
CHART_QUANTILES = [float(p) for p in range(100)] + [99 + k / 10 for k in range(1, 10)] + [100.0]


def summarize(results):
    """The committed summary: per figure and variant, each round's figures (samples dropped) and
    their medians; the chart's quantiles of the all-at-once cancel latencies, all rounds pooled."""
    out = {k: v for k, v in results.items() if k != "figures"}
    out["figures"] = {}
    for figure, by_name in results["figures"].items():
        out["figures"][figure] = {}
        for name, per_round in by_name.items():
            rounds = [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items() if not k.startswith("samples")}
                      for r in per_round]
            numeric = {k for r in rounds for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            entry = {"median": {k: round(median([r.get(k) for r in rounds]), 3) for k in sorted(numeric)}, "rounds": rounds}
            if figure == "cancel_at_once":
                pooled = [v for r in per_round for v in r.get("samples_us", [])]
                entry["quantiles_us"] = [round(percentile(pooled, q), 1) for q in CHART_QUANTILES] if pooled else []
            out["figures"][figure][name] = entry
    out["chart_quantiles"] = CHART_QUANTILES
    out["summary_of"] = "Benchmarks/results/raw.json (every sample; not committed)"
    return out


def summary_json(summary, depth=3):
    """The summary as JSON, nested objects indented to `depth` (figure, variant), anything deeper
    on one line: a few KB, and a diff shows which figure moved."""
    def dump(node, level):
        if isinstance(node, dict) and level < depth and node:
            pad = " " * (level + 1)
            items = [f"{pad}{json.dumps(k)}: {dump(v, level + 1)}" for k, v in node.items()]
            return "{\n" + ",\n".join(items) + "\n" + " " * level + "}"
        return json.dumps(node, ensure_ascii=False, separators=(", ", ": "))
    return dump(summary, 0) + "\n"


# -- report helpers (shared with stream-bench.py) -------------------------------------------------

def fig(summary, figure, name, key):
    """The median over rounds of one figure of one variant, or None when it was not measured."""
    v = summary.get("figures", {}).get(figure, {}).get(name, {}).get("median", {}).get(key)
    return None if v is None or v != v else v


def fmt_us(v):
    if v is None or v != v:
        return "not measured"
    return f"{v / 1000:.2f} ms" if v >= 1000 else f"{v:.0f} µs"


def fmt_n(v, unit=""):
    return "not measured" if v is None or v != v else f"{v:,.0f}{unit}"


def times(a, b):
    return f"{a / b:.2f}×" if a is not None and b else "n/a"


def verdict(ok, why=""):
    """The `met` column: met, **missed**, or not measured (ok is None)."""
    if ok is None:
        return "not measured" + (f" ({why})" if why else "")
    return ("met" if ok else "**missed**") + (f" ({why})" if why else "")


def go_reason(summary):
    return None if summary.get("go_measured") else "Go not installed"


def hb_reason(summary):
    """Why Hummingbird 2 was not measured in this run, or None when it was."""
    h = summary.get("hummingbird")
    if h is None:
        return "this summary is from a run before the Hummingbird reference"
    # One line, and nothing that splits a table cell.
    return None if h.get("measured") else " ".join(str(h.get("reason") or "unknown").split()).replace("|", "/")


# -- report ---------------------------------------------------------------------------------------

def issue10_rows(s):
    """(figure, greetd, reference, ratio, target, met) rows of issue 10."""
    rows = []
    nogo = go_reason(s)
    g, go = fig(s, "fast_path", "greetd", "rps"), fig(s, "fast_path", "go", "rps")
    rows.append(("Fast path, greetd as shipped (default workers) / Go, req/s", fmt_n(g), fmt_n(go), times(g, go),
                 "≥ 1.2× Go", verdict(None if g is None or go is None else g >= 1.2 * go, nogo or "")))
    w1 = fig(s, "fast_path_1", "greetd_1_worker", "rps")
    cl, plain = fig(s, "fast_path_1", "c_evhttp_changelist", "rps"), fig(s, "fast_path_1", "c_evhttp", "rps")
    rows.append(("Fast path, `greetd --workers 1` / raw evhttp on one loop with the changelist, req/s", fmt_n(w1), fmt_n(cl),
                 times(w1, cl), "≥ 0.9× the floor", verdict(None if w1 is None or cl is None else w1 >= 0.9 * cl)))
    rows.append(("… raw evhttp without the changelist (libevent's default)", fmt_n(w1), fmt_n(plain), times(w1, plain), "", ""))
    c = s.get("counts", {})
    mg, mc, mgo = (fig(s, "memory", n, "bytes_per_pending") for n in ("greetd", "c_evhttp", "go"))
    rows.append((f"Memory per pending greeting, {c.get('memory', '?'):,} held / raw evhttp floor", fmt_n(mg, " B"),
                 fmt_n(mc, " B"), times(mg, mc), "≤ 2,867 B and ≤ 1.12× the floor",
                 verdict(None if mg is None or mc is None else mg <= 2867 and mg <= 1.12 * mc)))
    rows.append(("… Go net/http", fmt_n(mg, " B"), fmt_n(mgo, " B"), times(mg, mgo), "", ""))
    for figure, label, target, ok in (
            ("cancel_spread", f"aborts spread over {c.get('spread_s', 3):g} s", "p99 ≤ 0.5 ms and ≤ Go",
             lambda a, b: a <= 500 and b is not None and a <= b),
            ("cancel_at_once", "all closed at once", "p99 ≤ 0.6× Go", lambda a, b: b is not None and a <= 0.6 * b)):
        p50, p99 = fig(s, figure, "greetd", "p50_us"), fig(s, figure, "greetd", "p99_us")
        go50, go99 = fig(s, figure, "go", "p50_us"), fig(s, figure, "go", "p99_us")
        rows.append((f"Cancel latency, {c.get('cancel', '?'):,} pending, {label}: p50 / p99 (vs Go)",
                     f"{fmt_us(p50)} / {fmt_us(p99)}", f"{fmt_us(go50)} / {fmt_us(go99)}", times(p99, go99), target,
                     verdict(None if p99 is None or (go99 is None) else ok(p99, go99), nogo or "")))
    before, after, rec = (fig(s, "storm", "greetd", k) for k in ("rss_before", "rss_after", "recovered_s"))
    peak = fig(s, "storm", "greetd", "rss_peak")
    storm_rounds = s.get("figures", {}).get("storm", {}).get("greetd", {}).get("rounds", [])
    recovered = [r.get("recovered_s") for r in storm_rounds]
    mib = lambda v: "?" if v is None else f"{v / 2**20:.1f}"  # noqa: E731
    rows.append((f"RSS after a {c.get('storm', '?'):,}-abort storm ({c.get('storm_connections', '?'):,} at once): "
                 "before → peak → after; time back within 10%",
                 f"{mib(before)} → {mib(peak)} → {mib(after)} MiB; "
                 + ", ".join("not within 5 s" if t is None else f"{t:.2f} s" for t in recovered), "", "",
                 "within 10% of before within 5 s",
                 verdict(None if not recovered else all(t is not None and t <= 5 for t in recovered))))
    fails = [f for r in storm_rounds for f in r.get("checks_failed", [])]
    exits = [r.get("stress_exit") for r in storm_rounds]
    rows.append(("Abort storm: greet-stress exit codes (its /metrics checks), greetd alive", f"{exits}"
                 + (f"; failed: {', '.join(sorted(set(fails)))}" if fails else ""), "", "", "exit 0, alive",
                 verdict(None if not storm_rounds else all(r.get("stress_exit") == 0 and r.get("alive") for r in storm_rounds))))
    held, gheld = fig(s, "capacity", "greetd", "held"), fig(s, "capacity", "go", "held")
    asked = c.get("capacity", 0)
    rows.append((f"Capacity: pending greetings held (of {asked:,})", fmt_n(held), fmt_n(gheld), "",
                 f"{asked:,} held" + (" (19,000 in a full run)" if asked != 19000 else ""),
                 verdict(None if held is None else held >= asked)))
    t = {k: fig(s, "capacity", "greetd", k) for k in ("tick_p50_ms", "tick_p99_ms", "tick_min_ms")}
    tg = {k: fig(s, "capacity", "go", k) for k in ("tick_p50_ms", "tick_p99_ms", "tick_min_ms")}
    ms = lambda d: "not measured" if d["tick_p99_ms"] is None else \
        f"{d['tick_p50_ms']:.1f} / {d['tick_p99_ms']:.1f} ms (min {d['tick_min_ms']:.1f})"  # noqa: E731
    rows.append(("… tick lateness while holding them (a tick's log time minus its `Handling` line's), p50 / p99",
                 ms(t), ms(tg), times(t["tick_p99_ms"], tg["tick_p99_ms"]), "p99 < 10 ms, p50 ≥ 0",
                 verdict(None if t["tick_p99_ms"] is None else t["tick_p99_ms"] < 10 and t["tick_p50_ms"] >= 0)))
    return rows


def hummingbird_rows(s):
    """(figure, greetd, reference, ratio, target, met) rows of issue 15: greetd's async handler
    against Hummingbird 2's. Without Hummingbird the greetd figure is still shown, and the verdict
    says what it can (the 5,000 B half) and that the Hummingbird half was not measured."""
    reason = hb_reason(s)
    c = s.get("counts", {})
    rows = []
    g, hb = fig(s, "fast_path", "greetd_async", "rps"), fig(s, "fast_path", "hummingbird", "rps")
    missing = None if hb is not None else f"Hummingbird not measured: {reason or 'no figure'}"
    rows.append(("Async hello, wrk -t1 -c64, req/s: greetd `/?async=1&delay=0s` / Hummingbird 2", fmt_n(g), fmt_n(hb),
                 times(g, hb), "≥ 1.5× Hummingbird",
                 verdict(None, missing) if g is None or hb is None else verdict(g >= 1.5 * hb)))
    g, hb = fig(s, "async_memory", "greetd_async", "bytes_per_pending"), fig(s, "async_memory", "hummingbird", "bytes_per_pending")
    missing = None if hb is not None else f"Hummingbird not measured: {reason or 'no figure'}"
    if g is None:
        met = verdict(None, missing or "")
    elif hb is None:  # only the absolute half can be judged
        met = verdict(False, f"over 5,000 B; {missing}") if g > 5000 else verdict(None, f"≤ 5,000 B met; {missing}")
    else:
        halves = [why for ok, why in ((g <= 5000, "over 5,000 B"), (g <= 0.25 * hb, "over 0.25× Hummingbird")) if not ok]
        met = verdict(not halves, "; ".join(halves))
    rows.append((f"Memory per pending async request, {c.get('memory', '?'):,} held: greetd `/?async=1` / Hummingbird 2",
                 fmt_n(g, " B"), fmt_n(hb, " B"), times(g, hb), "≤ 5,000 B and ≤ 0.25× Hummingbird", met))
    return rows


def table(rows, columns):
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    return lines


def missed_line(rows):
    targets = [r for r in rows if r[-1]]
    missed = [r[0] for r in targets if r[-1].startswith("**missed**")]
    unmeasured = sum(1 for r in targets if r[-1].startswith("not measured"))
    return (f"Targets missed: {len(missed)} of {len(targets)}" + (f" ({'; '.join(missed)})" if missed else "")
            + (f"; {unmeasured} not measured" if unmeasured else "") + ".")


def chart(summary, path):
    """An SVG of the all-at-once cancel latency distributions (CDF), drawn by hand (no plotting
    library), from the summary's quantiles (all rounds pooled)."""
    series = []
    for name, color in (("greetd", "#d9480f"), ("go", "#1c7ed6")):
        values = summary.get("figures", {}).get("cancel_at_once", {}).get(name, {}).get("quantiles_us")
        if values:
            series.append((name, color, list(zip(summary.get("chart_quantiles", CHART_QUANTILES), values))))
    width, height, left, bottom, top, right = 720, 420, 70, 50, 30, 20
    xmax = max(next(v for p, v in q if p >= 99.9) for _, _, q in series) * 1.1 if series else 1
    x = lambda v: left + (width - left - right) * min(v, xmax) / xmax  # noqa: E731
    y = lambda p: height - bottom - (height - bottom - top) * p  # noqa: E731
    n = summary.get("counts", {}).get("cancel", "?")
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="14">Cancel latency, {n} pending closed at once '
             f'(close() to the Context Error line; {summary.get("rounds")} round(s) pooled)</text>']
    for i in range(6):
        v = xmax * i / 5
        parts.append(f'<line x1="{x(v)}" y1="{y(0)}" x2="{x(v)}" y2="{y(1)}" stroke="#eee"/>')
        parts.append(f'<text x="{x(v)}" y="{y(0) + 16}" text-anchor="middle">{fmt_us(v)}</text>')
    for p in (0, 0.25, 0.5, 0.75, 0.9, 1):
        parts.append(f'<line x1="{left}" y1="{y(p)}" x2="{width - right}" y2="{y(p)}" stroke="#eee"/>')
        parts.append(f'<text x="{left - 6}" y="{y(p) + 4}" text-anchor="end">{int(p * 100)}%</text>')
    parts.append(f'<text x="{width / 2}" y="{height - 10}" text-anchor="middle">latency (fraction of aborts at or below)</text>')
    for k, (name, color, q) in enumerate(series):
        points = " ".join(f"{x(v):.1f},{y(p / 100):.1f}" for p, v in q)
        p50 = next(v for p, v in q if p >= 50)
        p99 = next(v for p, v in q if p >= 99)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>')
        parts.append(f'<rect x="{left + 20}" y="{top + 10 + k * 18}" width="12" height="12" fill="{color}"/>')
        parts.append(f'<text x="{left + 38}" y="{top + 21 + k * 18}">{name}: p50 {fmt_us(p50)}, p99 {fmt_us(p99)}</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


HOW = """## How each figure is measured

- **Rounds.** Each figure's variants (greetd, Go, the floor, ...) run one after another in each
  round, a fresh server each time, and the rounds repeat (`--rounds`, default 3); a figure is the
  median over rounds of each round's figure. Per-round figures are in `Benchmarks/results/latest.json`.
- **Fast path.** `wrk -t1 -c64 -d5s http://127.0.0.1:PORT/?delay=0s`, logs at `warning`. greetd as
  shipped (its default workers) against Go; `greetd --workers 1` against the raw evhttp floor
  (Benchmarks/c-evhttp, one loop, no abort watch, no log) run with `EVENT_EPOLL_USE_CHANGELIST=1`
  (libevent's epoll changelist, the floor's best setting) and without it.
- **Memory per pending greeting.** RSS (`/proc/PID/statm`) after 100 warm-up requests, settled;
  then N greetings held open (`?delay=120s`, `--tick 10m` so no tick fires, logs at `warning`) and
  RSS again once it stops moving (unchanged within 0.5% for 1 s); the growth divided by N.
- **Cancel latency.** N greetings are started (`GET /?delay=120s` with an `X-Request-Id`; the
  runner waits for every `Handling greeting request` line), then closed: FIN and RST (`SO_LINGER`
  0) alternating, either spread evenly over 3 s or all in one tight loop. The runner records
  `CLOCK_MONOTONIC` just before each `close()`; a separate reader process stamps every stderr line
  with `CLOCK_MONOTONIC` as it arrives; the latency is the `Context Error` line's arrival minus
  the close.
- **RSS after the storm.** `greet-stress` aborts 10,000 greetings (2,000 connections, after
  50 ms–1 s, FIN/RST/half-close mixed) and checks greetd's `/metrics` (canceled grew by exactly
  the aborts, in-flight back to its start). RSS is read before; after greet-stress exits it is
  polled every 50 ms for up to 5 s until it is within 10% of the pre-storm figure; the time it
  took is reported. Peak RSS is greet-stress's reading.
- **Capacity and tick lateness.** 19,000 greetings held (the runner and the server each need a
  descriptor per connection) for 6 s at `--tick 1s`. "Held" counts connections the server had
  neither closed nor reset. Tick lateness is what the runner can see from outside: tick *k*'s
  log timestamp minus *k* s after the greeting's `Handling greeting request` line's timestamp
  (signed), from the server's own µs timestamps. It is *not* greetd's own rule: greetd counts
  tick *k* from the request's arrival (the instant the parsed request was dispatched, on the
  monotonic clock), which comes a little before the `Handling` line is stamped, and never fires
  a tick before that (docs/INTERNALS.md, "Timers"). Log timestamps are the wall clock, which
  NTP may slew against the monotonic one. So a negative figure here (the `min`) says a tick was
  logged less than *k* s after the `Handling` line, not that it came before its time as greetd
  measures it; the p50 and p99 are the useful figures.
- **Async handler and streams.** The async handler is `GET /?async=1&delay=…` (the plain
  greeting as an async handler sleeping on a loop timer, cancelled by the abort); the stream is
  `GET /` with `Accept: text/event-stream` (Go: its SSE mode with `http.Flusher`). Their cancel
  latency and memory are measured as above, in the same rounds; the async fast path is `wrk` on
  `/?async=1&delay=0s` against the plain route's.
- **Hummingbird 2 (the async reference).** `Benchmarks/hummingbird/hb-greet`, a package of its
  own depending on Hummingbird 2 (the version its `Package.resolved` pins), built by the runner
  with `swift build -c release --package-path Benchmarks/hummingbird/hb-greet` from the local
  package copies; when they don't resolve or build (and always with `--smoke`, which builds
  nothing) its figures are "not measured" and the report says why. It serves `GET /?delay=D`
  with a handler that sleeps D with `Task.sleep` (none for `0s`), then answers `Hello Gopher!\n`;
  Hummingbird as shipped: its default HTTP/1 server, one event loop per core, logs at `warning`,
  nothing per request; an abort does not cancel its sleep. The **async hello** is `wrk` on its
  `/?delay=0s` against greetd's `/?async=1&delay=0s` (greetd as shipped), in the fast path's
  rounds. **Memory per pending async request** is measured as memory per pending greeting
  (above), in rounds of its own: greetd's `/?async=1&delay=120s` (warm-up on `/?async=1&delay=0s`)
  against Hummingbird's `/?delay=120s`.
- **Executor.** `executor-bench` (`swift run -c release executor-bench`), its own best-of-5
  table, printed as is.
- The chart (`Benchmarks/cancel-latency.svg`) is drawn by the runner (SVG, no plotting library):
  the distribution of the all-at-once cancel latencies, all rounds pooled.
"""


def report(summary, out_path, chart_path):
    """BENCHMARKS.md, one section per figure (fast path, memory, cancel latency, RSS after storms,
    capacity and tick lateness, streams, executor), each with its rows from greetd's own runs
    (issue10_rows) and the async and streaming ones (Benchmarks/stream-bench.py's rows)."""
    sb = stream_bench()
    m = summary["machine"]
    rows10, rows9, rows15 = issue10_rows(summary), sb.rows(summary), hummingbird_rows(summary)
    # The rows come in a fixed order (see issue10_rows and stream-bench.py's rows): fail loudly
    # if either changes, rather than file a row under the wrong figure.
    assert len(rows10) == 11 and len(rows9) == 5 and len(rows15) == 2, (len(rows10), len(rows9), len(rows15))
    c = summary.get("counts", {})
    # The stream's cancel row follows the async one in stream-bench.py ("… the streaming
    # greeting"); here it opens its own section, so it gets a label of its own.
    stream_cancel = (f"Cancel latency, {c.get('cancel', '?'):,} pending, aborts over {c.get('spread_s', 3):g} s, "
                     "p50 / p99: the streaming greeting / Go's SSE",) + tuple(rows9[1][1:])
    sections = [
        ("Fast path", "`wrk -t1 -c64` on `/?delay=0s` (and the async route, against Hummingbird 2's), logs at `warning`.",
         rows10[0:3] + [rows9[4], rows15[0]]),
        ("Memory per pending request", "RSS growth per greeting held open (and per async request, against "
         "Hummingbird 2's).", rows10[3:5] + [rows15[1]]),
        ("Cancel latency", "From the client's `close()` to the `Context Error` line's arrival.",
         rows10[5:7] + [rows9[0]]),
        ("RSS after storms", "`greet-stress` abort storms, then RSS polled until it settles.", rows10[7:9]),
        ("Capacity and tick lateness", "Greetings held at once, and how late their ticks are logged. "
         "Tick lateness is measured from each greeting's `Handling` log line, not from the request's "
         "arrival that greetd counts its ticks from: see \"How each figure is measured\".", rows10[9:11]),
        ("Streams", "The streaming greeting (`Accept: text/event-stream`) against the plain one and Go's SSE.",
         [stream_cancel] + rows9[2:4]),
    ]
    mode = " (smoke run: tiny counts, numbers meaningless)" if summary.get("smoke") else \
        " (quick run: small counts, 1 round)" if summary.get("quick") else ""
    lines = [
        "# Benchmarks", "",
        "Written by `python3 Benchmarks/run.py` (the whole file is regenerated; edit the runner, not this).", "",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}, open-file limit "
        f"{m['fd_limit']}, load average at start {' / '.join(str(x) for x in m.get('load_at_start', []))}",
        f"- Software: {m['swift']}; {m['go']}; libevent {m['libevent']}"
        + ("" if hb_reason(summary) else f"; Hummingbird {(summary.get('hummingbird') or {}).get('version') or '2'} "
           "(Benchmarks/hummingbird/hb-greet)"),
    ] + ([f"- Hummingbird not measured: {hb_reason(summary)}"] if hb_reason(summary) else []) + [
        f"- Date: {m['date']}{mode}",
        f"- Each figure: the median of {summary['rounds']} alternating round(s) (greetd, Go, greetd, Go, …; "
        "Hummingbird among them in the async figures).", "",
        missed_line([row for _, _, rows in sections for row in rows]), "",
    ]
    chart_link = os.path.relpath(chart_path, os.path.dirname(os.path.abspath(out_path)))
    for title, intro, rows in sections:
        lines += [f"## {title}", "", intro, ""]
        lines += table(rows, ("figure", "greetd", "reference", "ratio", "target", "met"))
        lines += [""]
        if title == "Cancel latency":
            lines += [f"![cancel latency distributions]({chart_link})", ""]
    # Where the cost of each target still missed goes, object by object and call by call, and
    # what would remove it: measured by hand (dhat, callgrind), kept in Benchmarks/breakdown.md.
    breakdown = os.path.join(ROOT, "Benchmarks", "breakdown.md")
    if os.path.exists(breakdown):
        lines += [open(breakdown).read().rstrip("\n"), ""]
    lines += ["## Executor", ""]
    lines += sb.executor_section(summary)
    lines += ["", HOW, "A summary of the run (per-round figures, medians, the chart's quantiles): "
              "`Benchmarks/results/latest.json`; every sample: `Benchmarks/results/raw.json` (not committed)."]
    # The library's section is written by Benchmarks/token-stream-bench.py: keep it.
    kept = ""
    if os.path.exists(out_path):
        old = open(out_path).read()
        if "<!-- library:begin -->" in old and "<!-- library:end -->" in old:
            kept = "<!-- library:begin -->" + old.split("<!-- library:begin -->", 1)[1].split("<!-- library:end -->", 1)[0] \
                + "<!-- library:end -->\n"
    with open(out_path, "w") as f:
        f.write("\n".join(lines) + "\n" + ("\n" + kept if kept else ""))


# -- main -----------------------------------------------------------------------------------------

def build(have_go):
    log("building greetd, greet-stress and executor-bench (release)")
    for product in ("greetd", "greet-stress", "executor-bench"):
        subprocess.run(["swift", "build", "-c", "release", "--product", product], cwd=ROOT, check=True)
    if have_go:
        log("building the Go reference")
        subprocess.run(["go", "build", "-o", os.path.join(BENCH_BUILD, "go-greetd"), "."],
                       cwd=os.path.join(ROOT, "Benchmarks", "go-greetd"), check=True)


def hb_version():
    """Hummingbird's version as Benchmarks/hummingbird/hb-greet/Package.resolved pins it."""
    try:
        with open(os.path.join(HB_PACKAGE, "Package.resolved")) as f:
            pins = json.load(f).get("pins", [])
        return next((p["state"].get("version") for p in pins if p.get("identity") == "hummingbird"), None)
    except (OSError, ValueError, KeyError):
        return None


def build_hummingbird(args):
    """Hummingbird 2, the async reference: {"measured": bool, "reason": why not, "version"}.
    Built from the local package copies in a full or --quick run; never with --smoke (CI's run
    stays short and builds nothing); with --skip-build, an hb-greet already built is used. A
    package that doesn't resolve or build is not a broken run: its figures are "not measured"."""
    def skipped(reason):
        log(f"Hummingbird not measured: {reason}")
        return {"measured": False, "reason": reason, "version": hb_version()}
    if args.smoke:
        return skipped("not built in a smoke run (--smoke)")
    if args.skip_build:
        if not os.path.exists(HB_BIN):
            return skipped(f"--skip-build and no {os.path.relpath(HB_BIN, ROOT)}")
        return {"measured": True, "reason": None, "version": hb_version()}
    log("building the Hummingbird 2 reference (Benchmarks/hummingbird/hb-greet, release; "
        "the first build takes a few minutes)")
    try:
        proc = subprocess.run(["swift", "build", "-c", "release", "--package-path", HB_PACKAGE],
                              cwd=ROOT, capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        return skipped("its build took over 30 minutes")
    if proc.returncode != 0 or not os.path.exists(HB_BIN):
        output = (proc.stderr + "\n" + proc.stdout).splitlines()
        error = next((line.strip() for line in output if "error:" in line), None) \
            or next((line.strip() for line in reversed(output) if line.strip()), f"exit {proc.returncode}")
        return skipped(f"swift build of {os.path.relpath(HB_PACKAGE, ROOT)} failed ({error[:200]})")
    return {"measured": True, "reason": None, "version": hb_version()}


def build_floor():
    os.makedirs(BENCH_BUILD, exist_ok=True)
    subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-o", os.path.join(BENCH_BUILD, "c-evhttp"),
                    "Benchmarks/c-evhttp/server.c", "-levent"], cwd=ROOT, check=True)


def output_paths(args):
    """A quick (or smoke) run writes only under .build-bench/ (git-ignored): its small counts
    must never replace the tracked BENCHMARKS.md, chart or summary."""
    if args.quick:
        d = os.path.join(BENCH_BUILD, "smoke" if args.smoke else "quick")
        paths = {"report": os.path.join(d, "BENCHMARKS.md"), "chart": os.path.join(d, "cancel-latency.svg"),
                 "summary": os.path.join(d, "latest.json"), "raw": os.path.join(d, "raw.json")}
    else:
        d = os.path.join(ROOT, "Benchmarks", "results")
        paths = {"report": os.path.join(ROOT, "BENCHMARKS.md"), "chart": os.path.join(ROOT, "Benchmarks", "cancel-latency.svg"),
                 "summary": os.path.join(d, "latest.json"), "raw": os.path.join(d, "raw.json")}
    if args.out:
        paths["report"] = args.out
    return paths


def broken(results):
    """What makes a run broken (not a missed target): a figure that came back empty, a server that
    died or exited non-zero."""
    problems = []
    for figure, by_name in results["figures"].items():
        for name, per_round in by_name.items():
            for i, r in enumerate(per_round):
                where = f"{figure}/{name} round {i + 1}"
                if not r.get("alive") or r.get("exit") not in (0, None):
                    problems.append(f"{where}: server died or exited {r.get('exit')}")
                if "seen" in r and r["seen"] == 0 or "rps" in r and not r["rps"] or "held" in r and not r["held"] \
                        or "ticks" in r and not r["ticks"]:
                    problems.append(f"{where}: no figure ({brief(r)})")
    if not any("LoopExecutor" in line for line in results.get("executor", {}).get("lines", [])):
        problems.append("executor-bench printed no table")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per figure (default 3)")
    ap.add_argument("--quick", action="store_true", help="1 round, small counts; writes under .build-bench/quick/ only")
    ap.add_argument("--smoke", action="store_true", help="with --quick: tiny counts, no build (uses .build/release), "
                    "under .build-bench/smoke/; exits non-zero only if the run is broken")
    ap.add_argument("--skip-build", action="store_true", help="use the binaries already built")
    ap.add_argument("--out", default=None, help="the report (default: BENCHMARKS.md, or under .build-bench/ with --quick)")
    ap.add_argument("--report-only", action="store_true", help="rewrite the report and chart from the summary, measuring nothing")
    args = ap.parse_args()
    if args.smoke:
        args.quick = args.skip_build = True
    paths = output_paths(args)
    if args.report_only:
        with open(paths["summary"]) as f:
            summary = json.load(f)
        chart(summary, paths["chart"])
        report(summary, paths["report"], paths["chart"])
        return
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install -y wrk")
    started = time.monotonic()
    raise_fd_limit()
    have_go = shutil.which("go") is not None
    if not have_go:
        log("go is not installed (apt-get install golang-go): the Go figures are not measured")
    if not args.skip_build:
        build(have_go)
    elif have_go and not os.path.exists(os.path.join(BENCH_BUILD, "go-greetd")):
        log("--skip-build and no .build-bench/go-greetd: the Go figures are not measured")
        have_go = False
    build_floor()
    hb = build_hummingbird(args)
    results = measure(args, have_go, hb)
    results["seconds"] = round(time.monotonic() - started)
    os.makedirs(os.path.dirname(paths["summary"]), exist_ok=True)
    with open(paths["raw"], "w") as f:
        json.dump(results, f)
    summary = summarize(results)
    with open(paths["summary"], "w") as f:
        f.write(summary_json(summary))
    chart(summary, paths["chart"])
    report(summary, paths["report"], paths["chart"])
    log(f"wrote {', '.join(os.path.relpath(paths[k], ROOT) for k in ('report', 'chart', 'summary', 'raw'))} "
        f"in {results['seconds']} s")
    problems = broken(results)
    for p in problems:
        log(f"BROKEN: {p}")
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
