#!/usr/bin/env python3
"""The token-stream example's figures for BENCHMARKS.md.

    python3 Benchmarks/token-stream-bench.py --binary .build/release/token-stream [--streams 2000]

1. Requests per second on `GET /v1/models` (`wrk -t1 -c64`, 5 s, after a 1 s warm-up), one loop.
2. Bytes per pending streamed completion: RSS growth (`/proc/PID/statm`) with N streamed
   completions held between tokens (token interval 300 s), divided by N, settled.
Prints one JSON object.
"""
import argparse, json, os, re, resource, socket, subprocess, time

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
    return proc, int(m.group(1))

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--streams", type=int, default=2000)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    out = {}
    proc, port = start(a.binary, "50ms")
    try:
        subprocess.run(["wrk", "-t1", "-c64", "-d1s", f"http://127.0.0.1:{port}/v1/models"], capture_output=True)
        r = subprocess.run(["wrk", "-t1", "-c64", "-d5s", f"http://127.0.0.1:{port}/v1/models"], capture_output=True, text=True)
        m = re.search(r"Requests/sec:\s+([\d.]+)", r.stdout)
        out["models_requests_per_second"] = float(m.group(1)) if m else None
    finally:
        proc.terminate(); proc.wait(30)
    proc, port = start(a.binary, "300s")
    socks = []
    try:
        body = b'{"model":"tiny-1","prompt":"a b c","max_tokens":16,"stream":true}'
        req = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
               + str(len(body)).encode() + b"\r\n\r\n" + body)
        warm = socket.create_connection(("127.0.0.1", port)); warm.sendall(req); warm.recv(4096); warm.close()
        before = settled(proc.pid)
        for _ in range(a.streams):
            s = socket.create_connection(("127.0.0.1", port)); s.sendall(req); socks.append(s)
        for s in socks:
            s.settimeout(30); s.recv(4096)  # the head and token 0's event
        after = settled(proc.pid)
        out["streams"] = a.streams
        out["bytes_per_pending_stream"] = round((after - before) / a.streams)
    finally:
        for s in socks: s.close()
        proc.terminate(); proc.wait(30)
    print(json.dumps(out))

if __name__ == "__main__":
    main()
