#!/usr/bin/env python3
"""Issue 9's performance figures: async handlers, the streaming (SSE) greeting, the executor.

Measured by Benchmarks/run.py, which imports this module: one run, one report (BENCHMARKS.md),
the same alternating rounds (greetd, Go, greetd, Go, ...). Running this file runs run.py with
the same arguments:

    python3 Benchmarks/stream-bench.py --quick        # = python3 Benchmarks/run.py --quick

This module adds its variants to run.py's figures and gives the issue 9 table:

1. Cancel latency with 2,000 pending and their aborts spread evenly over 3 s (run.py's
   cancel_latency), for an async handler sleeping on a loop timer (`GET /?async=1&delay=…`,
   greetd's plain greeting as an async handler, cancelled by the abort; the runner always uses
   greetd built from this tree, so the route exists) against the timer greeting
   (`GET /?delay=…`), and for the streaming greeting (`Accept: text/event-stream`) against Go's
   SSE mode. Targets: async p99 <= 1 ms and <= 1.2x the timer greeting's; stream p99 <= 1 ms
   and <= Go's SSE.
2. Memory per pending streaming greeting, 10,000 held, against the plain greeting's (target
   <= 1.5x), Go's SSE beside it.
3. Fast path of the async handler answering at once (`/?async=1&delay=0s`) against the plain
   route's (`wrk -t1 -c64`): target >= 0.85x.
4. Executor overhead: executor-bench's table (jobs/s through a LoopExecutor on-loop and
   cross-thread, beside a serial DispatchQueue), printed as is.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import (fig, fmt_n, fmt_us, go_cmd, go_reason, greetd_cmd, memory_per_pending,  # noqa: E402
                 cancel_latency, times, verdict, with_server, wrk)

# The async handler's route: greetd's plain greeting as an async handler on the loop executor.
ASYNC_ROUTE = "/?async=1"
STREAM_HEADER = "Accept: text/event-stream\r\n"
PENDING = "delay=120s"   # long enough to outlive any round


def variants(c, have_go):
    """Issue 9's variants, added to run.py's figures of the same name: {figure: [(name, fn)]}."""
    plain, asynchronous = f"/?{PENDING}", f"{ASYNC_ROUTE}&{PENDING}"

    def cancel(path, headers, tag):
        return lambda s: cancel_latency(s, c["cancel"], c["spread_s"], path, headers, tag)

    out = {
        "fast_path": [("greetd_async", with_server("greetd", greetd_cmd("warning"),
                                                   lambda s: wrk(s.port, f"{ASYNC_ROUTE}&delay=0s", c["wrk_s"])))],
        "cancel_spread": [("greetd_async", with_server("greetd", greetd_cmd(), cancel(asynchronous, "", "a"))),
                          ("greetd_stream", with_server("greetd", greetd_cmd(), cancel(plain, STREAM_HEADER, "s")))],
        "memory": [("greetd_stream", with_server("greetd", greetd_cmd("warning", tick="10m"),
                                                 lambda s: memory_per_pending(s, c["memory"], plain, STREAM_HEADER)))],
    }
    if have_go:
        out["cancel_spread"].append(("go_sse", with_server("go", go_cmd(), cancel(plain, STREAM_HEADER, "s"))))
        out["memory"].append(("go_sse", with_server("go", go_cmd("warning", tick="10m"),
                                                    lambda s: memory_per_pending(s, c["memory"], plain, STREAM_HEADER))))
    return out


def rows(s):
    """(figure, greetd, reference, ratio, target, met) rows of issue 9."""
    c = s.get("counts", {})
    nogo = go_reason(s)

    def lat(name):
        return f"{fmt_us(fig(s, 'cancel_spread', name, 'p50_us'))} / {fmt_us(fig(s, 'cancel_spread', name, 'p99_us'))}"

    out = []
    timer, asyn = fig(s, "cancel_spread", "greetd", "p99_us"), fig(s, "cancel_spread", "greetd_async", "p99_us")
    out.append((f"Cancel latency, {c.get('cancel', '?'):,} pending, aborts over {c.get('spread_s', 3):g} s, p50 / p99: "
                "async handler on a loop timer / the timer greeting", lat("greetd_async"), lat("greetd"), times(asyn, timer),
                "p99 ≤ 1 ms and ≤ 1.2× the timer greeting's",
                verdict(None if asyn is None or timer is None else asyn <= 1000 and asyn <= 1.2 * timer)))
    stream, sse = fig(s, "cancel_spread", "greetd_stream", "p99_us"), fig(s, "cancel_spread", "go_sse", "p99_us")
    out.append(("… the streaming greeting / Go's SSE", lat("greetd_stream"), lat("go_sse"), times(stream, sse),
                "p99 ≤ 1 ms and ≤ Go's SSE",
                verdict(None if stream is None or sse is None else stream <= 1000 and stream <= sse, nogo or "")))
    plain_b, stream_b, sse_b = (fig(s, "memory", n, "bytes_per_pending") for n in ("greetd", "greetd_stream", "go_sse"))
    out.append((f"Memory per pending greeting, {c.get('memory', '?'):,} held: streaming / plain", fmt_n(stream_b, " B"),
                fmt_n(plain_b, " B"), times(stream_b, plain_b), "≤ 1.5× the plain greeting's",
                verdict(None if stream_b is None or plain_b is None else stream_b <= 1.5 * plain_b)))
    out.append(("… streaming greeting / Go's SSE", fmt_n(stream_b, " B"), fmt_n(sse_b, " B"), times(stream_b, sse_b), "", ""))
    plain_r, async_r = fig(s, "fast_path", "greetd", "rps"), fig(s, "fast_path", "greetd_async", "rps")
    out.append(("Fast path, wrk -t1 -c64, req/s: `/?async=1&delay=0s` / the plain route `/?delay=0s`",
                fmt_n(async_r), fmt_n(plain_r), times(async_r, plain_r), "≥ 0.85× the plain route's",
                verdict(None if async_r is None or plain_r is None else async_r >= 0.85 * plain_r)))
    return out


def executor_section(s):
    """executor-bench's output, as printed (a table of jobs/s, LoopExecutor beside DispatchQueue)."""
    e = s.get("executor") or {}
    if not e.get("lines"):
        return ["Executor overhead: not measured."]
    return [f"Executor overhead (`executor-bench --jobs {e['jobs']} --repeats {e['repeats']}`; no target, beside "
            "a serial `DispatchQueue`):", "", "```"] + e["lines"] + ["```"]


if __name__ == "__main__":
    run = os.path.join(os.path.dirname(os.path.abspath(__file__)), "run.py")
    os.execv(sys.executable, [sys.executable, run] + sys.argv[1:])
