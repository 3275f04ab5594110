#!/usr/bin/env python3
"""The library's figures for BENCHMARKS.md: the token-stream example, and greetd's cost per request
before and after a change.

    python3 Benchmarks/token-stream-bench.py --binary .build/release/token-stream [--streams 2000]
        [--rounds 3] [--cost-before before.json --cost-after after.json] [--update BENCHMARKS.md]

The cost files are `Benchmarks/request-cost.py`'s output for greetd built from the commit before
and after. With --update, the section between the library markers of BENCHMARKS.md is rewritten
(Benchmarks/run.py keeps that section when it regenerates the rest).

1. Requests per second on `GET /v1/models` (`wrk -t1 -c64`, 5 s, after a 1 s warm-up), one loop.
2. Bytes per pending streamed completion: RSS growth (`/proc/PID/statm`) with N streamed
   completions held between tokens (token interval 300 s), divided by N, settled.
Prints one JSON object.
"""
import argparse, json, os, re, resource, socket, subprocess, threading, time

def rss(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

def settled(pid, seconds=2.0):
    last, end = rss(pid), time.time() + 15
    while time.time() < end:
        time.sleep(seconds)
        now = rss(pid)
        if abs(now - last) < 64 * 1024: return now
        last = now
    return last

def start(binary, interval):
    proc = subprocess.Popen([binary, "--port", "0", "--workers", "1", "--token-interval", interval],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    m = re.search(r"listening on http://[^:]+:(\d+)", line)
    if not m:
        proc.kill(); raise SystemExit(f"no listening line: {line!r}")
    # Keep reading its log (one line per canceled generation): a full pipe would block it.
    threading.Thread(target=lambda: proc.stderr.read(), daemon=True).start()
    return proc, int(m.group(1))

BEGIN, END = "<!-- library:begin -->", "<!-- library:end -->"


def median(values):
    values = sorted(v for v in values if v is not None)
    return values[len(values) // 2] if values else None


def section(rounds, cost_before, cost_after, pending=None, later=None):
    rps = median(r["models_requests_per_second"] for r in rounds)
    per_stream = median(r["bytes_per_pending_stream"] for r in rounds)
    lines = [BEGIN, "## The library: EventHTTP and its example (issues 13 and 15)", "",
             f"Written by `python3 Benchmarks/token-stream-bench.py --update BENCHMARKS.md`; medians of {len(rounds)} round(s).", "",
             "| figure | value | reference | target | met |", "|---|---|---|---|---|",
             f"| token-stream `GET /v1/models`, `wrk -t1 -c64` 5 s, one loop, req/s | {rps:,.0f} | |  recorded | — |",
             f"| token-stream, bytes per pending streamed completion ({rounds[0]['streams']:,} held between tokens) | "
             f"{per_stream:,} B | | recorded | — |"]
    if cost_before and cost_after:
        for key, name in (("instructions_per_request", "greetd instructions per keep-alive request (callgrind)"),
                          ("allocations_per_request", "greetd allocations per keep-alive request (dhat)"),
                          ("bytes_allocated_per_request", "greetd bytes allocated per keep-alive request (dhat)")):
            b, a = cost_before[key], cost_after[key]
            ratio = a / b if b else 0
            lines.append(f"| {name}: after / before | {a:,} | {b:,} | ≤ 1.05× before | "
                         f"{'met' if ratio <= 1.05 else '**missed**'} ({ratio:.3f}×) |")
    # Later changes measured with the same method, each against the one before it:
    # [(label, figures, cost stated)].
    previous = cost_after
    for label, figures, why in (later or []) if cost_after else []:
        for key, name in (("instructions_per_request", "instructions"), ("allocations_per_request", "allocations")):
            b, a = previous[key], figures[key]
            ratio = a / b if b else 0
            lines.append(f"| greetd {name} per keep-alive request, {label} | {a:,} | {b:,} | ≤ 1.05× or cost stated | "
                         f"{'met' if ratio <= 1.05 else '**missed**, cost stated'} ({ratio:.3f}×): {why} |")
        previous = figures
    if pending:
        b, a = median(pending["before"]), median(pending["after"])
        lines.append(f"| greetd bytes per pending greeting (10,000 held): after / before | {a:,} B | {b:,} B | "
                     f"≤ 1.05× before | {'met' if a <= 1.05 * b else '**missed**'} ({a / b:.3f}×) |")
    lines += ["", "The greetd rows use `python3 Benchmarks/request-cost.py --binary .build/release/greetd` on the "
              "release builds of the commits before and after (`GET /?delay=0s`, 16 keep-alive connections, "
              "5,000 requests after 200 to warm up; dhat: a 6,000-request run minus a 1,000-request run), and "
              "`python3 Benchmarks/pending-compare.py --before OLD --after NEW` for the pending greeting.", END]
    return "\n".join(lines)


def update(path, text):
    current = open(path).read() if os.path.exists(path) else ""
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        current = head + text + tail
    else:
        current = current.rstrip("\n") + "\n\n" + text + "\n"
    with open(path, "w") as f:
        f.write(current)


def measure_once(binary, streams):
    out = {}
    proc, port = start(binary, "50ms")
    try:
        subprocess.run(["wrk", "-t1", "-c64", "-d1s", f"http://127.0.0.1:{port}/v1/models"], capture_output=True)
        r = subprocess.run(["wrk", "-t1", "-c64", "-d5s", f"http://127.0.0.1:{port}/v1/models"], capture_output=True, text=True)
        m = re.search(r"Requests/sec:\s+([\d.]+)", r.stdout)
        out["models_requests_per_second"] = float(m.group(1)) if m else None
    finally:
        proc.terminate(); proc.wait(30)
    proc, port = start(binary, "300s")
    socks = []
    try:
        body = b'{"model":"tiny-1","prompt":"a b c","max_tokens":16,"stream":true}'
        req = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
               + str(len(body)).encode() + b"\r\n\r\n" + body)
        warm = socket.create_connection(("127.0.0.1", port)); warm.sendall(req); warm.recv(4096); warm.close()
        before = settled(proc.pid)
        for _ in range(streams):
            s = socket.create_connection(("127.0.0.1", port)); s.sendall(req); socks.append(s)
        for s in socks:
            s.settimeout(30); s.recv(4096)  # the head and token 0's event
        after = settled(proc.pid)
        out["streams"] = streams
        out["bytes_per_pending_stream"] = round((after - before) / streams)
    finally:
        for s in socks: s.close()
        proc.terminate(); proc.wait(30)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--streams", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cost-before")
    ap.add_argument("--cost-after")
    ap.add_argument("--pending", help="pending-compare.py's output")
    ap.add_argument("--later", nargs=3, metavar=("LABEL", "COST_JSON", "WHY"), action="append",
                    help="a later request-cost.py figure, with the reason for its cost; repeatable, each "
                         "against the one before it (the first against --cost-after)")
    ap.add_argument("--update", help="rewrite the library section of this BENCHMARKS.md")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    rounds = [measure_once(a.binary, a.streams) for _ in range(a.rounds)]
    cost_before = json.load(open(a.cost_before)) if a.cost_before else None
    cost_after = json.load(open(a.cost_after)) if a.cost_after else None
    print(json.dumps({"rounds": rounds, "cost_before": cost_before, "cost_after": cost_after}))
    if a.update:
        pending = json.load(open(a.pending)) if a.pending else None
        later = [(label, json.load(open(path)), why) for label, path, why in a.later or []]
        update(a.update, section(rounds, cost_before, cost_after, pending, later))

if __name__ == "__main__":
    main()
