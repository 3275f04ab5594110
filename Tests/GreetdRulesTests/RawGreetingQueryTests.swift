import GreetdRules
import Testing
import EventHTTPDuration
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The fast path over the raw query (`RawGreetingQuery`): evhttp_parse_query_str's split and
/// decoding, then the rules of `GreetingQuery.resolve`, with the same results and 400 texts.
/// Each case also states the items evhttp yields, and checks the reference path agrees.
@Suite struct RawGreetingQueryTests {
    private let defaultDelay = GoDuration.seconds(5)
    private let maxDelay = GoDuration.seconds(60)

    private func fast(_ query: String?, timeout: GoDuration? = nil) -> Result<GreetingQuery, QueryProblem> {
        Result { () throws(QueryProblem) in
            try RawGreetingQuery(query).resolve(delay: defaultDelay, maxDelay: maxDelay, timeout: timeout)
        }
    }

    private func reference(_ items: [(name: String, value: String)], timeout: GoDuration? = nil) -> Result<GreetingQuery, QueryProblem> {
        Result { () throws(QueryProblem) in
            try GreetingQuery.resolve(items, delay: defaultDelay, maxDelay: maxDelay, timeout: timeout)
        }
    }

    /// `query` gives what the reference path gives on `items` (evhttp's split of it), under
    /// both configurations.
    private func expectSame(_ query: String, _ items: [(name: String, value: String)],
                            sourceLocation: SourceLocation = #_sourceLocation) {
        for timeout in [nil, GoDuration.seconds(30)] {
            #expect(fast(query, timeout: timeout) == reference(items, timeout: timeout), sourceLocation: sourceLocation)
        }
    }

    @Test("no query, an empty one, or none of our names: the configured defaults")
    func defaults() {
        #expect(fast(nil) == .success(GreetingQuery(delay: defaultDelay, timeout: nil)))
        #expect(fast(nil, timeout: .seconds(30)) == .success(GreetingQuery(delay: defaultDelay, timeout: .seconds(30))))
        #expect(fast("") == .success(GreetingQuery(delay: defaultDelay, timeout: nil)))
        expectSame("other=1s", [("other", "1s")])
        expectSame("delayx=1s&xdelay=2s&Delay=3s", [("delayx", "1s"), ("xdelay", "2s"), ("Delay", "3s")])
    }

    @Test("plain values, the cap, timeouts under --timeout")
    func values() throws {
        expectSame("delay=0s", [("delay", "0s")])
        expectSame("delay=250ms&timeout=1.5s", [("delay", "250ms"), ("timeout", "1.5s")])
        expectSame("timeout=2m&delay=2h", [("timeout", "2m"), ("delay", "2h")])
        let capped = try fast("delay=2h").get()
        #expect(capped.delay == maxDelay && capped.delayWasCapped && capped.requestedDelay == .seconds(7_200))
        #expect(try fast("delay=-0").get().delay == .zero)
    }

    @Test("the first occurrence counts, even when it is empty or bad and a later one is good")
    func firstWins() {
        expectSame("delay=1s&delay=9s", [("delay", "1s"), ("delay", "9s")])
        expectSame("delay=&delay=1s", [("delay", ""), ("delay", "1s")])
        #expect(fast("delay=&delay=1s") == .failure(.badDuration("delay", "", .invalid(""))))
        expectSame("delay=5x&delay=1s", [("delay", "5x"), ("delay", "1s")])
    }

    @Test("an empty value is a bad duration; delay is checked before timeout")
    func emptyValue() {
        expectSame("delay=", [("delay", "")])
        expectSame("timeout=", [("timeout", "")])
        expectSame("timeout=x&delay=y", [("timeout", "x"), ("delay", "y")])
        #expect(fast("timeout=x&delay=y") == .failure(.badDuration("delay", "y", .invalid("y"))))
        #expect(fast("delay=-1s") == .failure(.negative("delay", "-1s")))
        #expect(fast("delay=-1s").description.contains("must not be negative"))
    }

    @Test("Go's split: empty arguments are skipped, a name without '=' has an empty value, unread names never refuse")
    func goSplit() throws {
        let defaults = Result<GreetingQuery, QueryProblem>.success(GreetingQuery(delay: defaultDelay, timeout: nil))
        expectSame("delay=1s&&timeout=2s", [("delay", "1s"), ("timeout", "2s")])
        expectSame("delay=1s&&", [("delay", "1s")])
        expectSame("&delay=1s", [("delay", "1s")])
        expectSame("delay=1s&", [("delay", "1s")])
        #expect(fast("&") == defaults)
        #expect(fast("&&") == defaults)
        #expect(fast("=x") == defaults)
        #expect(fast("cachebust") == defaults)
        expectSame("delay=0s&cachebust", [("delay", "0s"), ("cachebust", "")])
        #expect(try fast("delay=0s&cachebust").get().delay == .zero)
        expectSame("delay=1s&=x", [("delay", "1s"), ("", "x")])
        expectSame("delay=1s&abc", [("delay", "1s"), ("abc", "")])
        // `?delay` is `delay=`: an empty value, a bad duration, as before.
        expectSame("delay", [("delay", "")])
        #expect(fast("delay") == fast("delay="))
        #expect(fast("delay") == .failure(.badDuration("delay", "", .invalid(""))))
        #expect(fast("timeout&delay=1s") == .failure(.badDuration("timeout", "", .invalid(""))))
        // A bad value is still refused, whatever follows it.
        #expect(fast("delay=5x&abc").description.contains(#"invalid delay "5x""#))
        #expect(try RawGreetingQuery("stream&stream=1").asksForStream == false)
    }

    @Test("the reference split agrees with the fast path's flags and with evhttp's split where evhttp splits")
    func referenceSplit() {
        #expect(GreetingQuery.items(ofQuery: "").isEmpty)
        #expect(GreetingQuery.items(ofQuery: "&&&").isEmpty)
        let items = GreetingQuery.items(ofQuery: "a&b=%31+2&=c&d=%00x&e=%zz")
        #expect(items.map(\.name) == ["a", "b", "", "d", "e"])
        #expect(items.map(\.value) == ["", "1 2", "c", "", "%zz"])
    }

    @Test("'=' in a value is part of it; names are not decoded")
    func equalsAndNames() {
        expectSame("delay==1s", [("delay", "=1s")])
        expectSame("delay=1s=2", [("delay", "1s=2")])
        expectSame("%64elay=5x", [("%64elay", "5x")])  // not our name: the default delay
        #expect(fast("%64elay=5x") == .success(GreetingQuery(delay: defaultDelay, timeout: nil)))
    }

    @Test("percent-decoding: %xx, lone or short %, %2, + as a space, %2B as a plus")
    func decoding() throws {
        expectSame("delay=%31s", [("delay", "1s")])
        expectSame("delay=1%73", [("delay", "1s")])
        expectSame("delay=%2", [("delay", "%2")])
        expectSame("delay=1s%2", [("delay", "1s%2")])
        expectSame("delay=%", [("delay", "%")])
        expectSame("delay=%zz1s", [("delay", "%zz1s")])
        expectSame("delay=+1s", [("delay", " 1s")])
        #expect(fast("delay=+1s") == .failure(.badDuration("delay", " 1s", .invalid(" 1s"))))
        expectSame("delay=%2B1s", [("delay", "+1s")])
        #expect(try fast("delay=%2B1s").get().delay == .seconds(1))
        expectSame("delay=1s+", [("delay", "1s ")])
    }

    @Test("a decoded NUL ends the value, as a C string does")
    func nul() throws {
        expectSame("delay=1s%00junk", [("delay", "1s")])
        #expect(try fast("delay=1s%00junk").get().delay == .seconds(1))
        expectSame("delay=%00", [("delay", "")])
    }

    @Test("unicode: µs and μs, raw or escaped; other scalars and invalid UTF-8 in the error text")
    func unicode() throws {
        expectSame("delay=5µs", [("delay", "5µs")])
        expectSame("delay=5μs", [("delay", "5μs")])
        expectSame("delay=5%C2%B5s", [("delay", "5µs")])
        #expect(try fast("delay=5%C2%B5s").get().delay == GoDuration(nanoseconds: 5_000))
        expectSame("delay=5é", [("delay", "5é")])
        // %ff decodes to a byte that is not UTF-8: String(cString:) repairs it to U+FFFD.
        expectSame("delay=5%ffs", [("delay", "5\u{FFFD}s")])
        #expect(fast("delay=5%ffs").description == #"invalid delay "5\xef\xbf\xbds": time: unknown unit "\xef\xbf\xbds" in duration "5\xef\xbf\xbds""#)
        expectSame("délay=5x", [("délay", "5x")])
    }

    @Test("stream and async flags: the first value, decoded, must be exactly 1")
    func flags() throws {
        #expect(try RawGreetingQuery("stream=1").asksForStream)
        #expect(try RawGreetingQuery("stream=%31").asksForStream)
        #expect(try RawGreetingQuery("stream=1%00x").asksForStream)
        #expect(try !RawGreetingQuery("stream=0&stream=1").asksForStream)
        #expect(try !RawGreetingQuery("stream=11").asksForStream)
        #expect(try !RawGreetingQuery("stream=").asksForStream)
        #expect(try !RawGreetingQuery("stream=+1").asksForStream)
        #expect(try RawGreetingQuery("delay=1s&async=1").asksForAsync)
        #expect(try !RawGreetingQuery("async=1").asksForStream)
        #expect(try !RawGreetingQuery(nil).asksForAsync)
    }

    @Test("Go durations from bytes agree with the String parser (units, fractions, overflow)")
    func durations() {
        for text in ["0", "+0", "-0", "1h2m3.5s", ".5s", "5.", "1.s", "9223372036854775807ns",
                     "9223372036854775808ns", "-9223372036854775808ns", "2562047h47m16.854775808s",
                     "1.0000000000000000000001s", "5", "5sec", "s", "-", "", "1e3s", "3us", "3ns"] {
            let escaped = String(text.flatMap { $0 == "+" ? Array("%2B") : [$0] })  // `+` is a space
            expectSame("delay=\(escaped)", [("delay", text)])
        }
    }
}

extension Result<GreetingQuery, QueryProblem> {
    /// The 400 body, or `ok`.
    fileprivate var description: String {
        switch self {
        case .success: return "ok"
        case .failure(let problem): return problem.description
        }
    }
}
