import Foundation
import GreetdCore
import EventHTTPCore
import Testing
import TestSupport
import EventHTTPDuration
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension LiveServer {
    /// Deadlines never fire early; ticks are on time or late, never early.
    @Suite("Timing")
    struct TimingTests {
        @Test("a deadline never fires early: the access line's duration is at least the timeout",
              arguments: ["15ms", "40ms", "100ms"])
        func deadlineNeverEarly(timeout: String) async throws {
            let harness = try Harness(delay: "10s", tick: "3ms")
            let client = try harness.connect()
            for _ in 0..<3 {
                try client.sendGet("/?timeout=\(timeout)")
                let response = try await client.readResponse()
                #expect(response.status == 503)
                let line = try await harness.logs.waitForAccessLine(request: try #require(response.headers["x-request-id"]))
                let limit = try GoDuration(parsing: timeout).duration
                #expect(try accessDuration(line) >= limit, "\(line)")
            }
        }

        @Test("ticks are never early: tick n is logged no sooner than n ticks after the request was sent")
        func ticksNeverEarly() async throws {
            let harness = try Harness(delay: "100ms", tick: "7ms")
            let client = try harness.connect()
            let sent = ContinuousClock.now  // the server's start is later than this
            try client.sendGet("/")
            let response = try await client.readResponse()
            let id = try #require(response.headers["x-request-id"])
            let ticks = harness.logs.all.filter { $0.requestID == id && $0.message == thinking }
            #expect(ticks.count == 14)
            for (index, tick) in ticks.enumerated() {
                let due = sent + .milliseconds(7) * (index + 1)
                #expect(tick.time >= due, "tick \(index + 1) came \(due - tick.time) early")
            }
            let access = try await harness.logs.waitForAccessLine(request: id)
            #expect(try accessDuration(access) >= .milliseconds(100), "\(access)")
        }
    }
}

/// ``PunctualTimer`` on its own loop thread: every firing at or after its instant.
@Suite("PunctualTimer")
struct PunctualTimerTests {
    /// Records when each timer (by tag) fired.
    private final class Recorder: EventTarget {
        var firedAt: [Int: ContinuousClock.Instant] = [:]
        var timers: [PunctualTimer] = []
        var onDone: () -> Void = {}

        func eventFired(tag: Int, flags: EventFlags) {
            firedAt[tag] = .now
            if firedAt.count == timers.count { onDone() }
        }
    }

    @Test("many timers at odd instants never fire before them")
    func neverEarly() async throws {
        // The loop blocks its thread: run it on one of its own, off the cooperative pool.
        let results = try await offCooperativePool {
            let base = try EventBase()
            let recorder = Recorder()
            let start = ContinuousClock.now
            var dues: [ContinuousClock.Instant] = []
            for index in 0..<40 {
                let timer = try PunctualTimer(base: base, target: recorder, tag: index)
                recorder.timers.append(timer)
                dues.append(start + .microseconds(300 + 997 * index))
            }
            recorder.onDone = { base.exit() }
            for (timer, due) in zip(recorder.timers, dues) { try timer.schedule(at: due) }
            try base.run()
            return dues.indices.compactMap { index in recorder.firedAt[index].map { (dues[index], $0) } }
        }
        #expect(results.count == 40)
        for (due, at) in results {
            #expect(at >= due, "fired \(due - at) early")
        }
    }
}
