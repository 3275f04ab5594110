import GreetdRules
import Testing
import EventHTTPDuration
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `?delay=` and `?timeout=`: the rules the server applies, with its 400 texts.
@Suite struct GreetingQueryTests {
    private let defaultDelay = GoDuration.seconds(5)
    private let maxDelay = GoDuration.seconds(60)

    private func resolve(_ items: [(name: String, value: String)], timeout: GoDuration? = nil) throws(QueryProblem) -> GreetingQuery {
        try GreetingQuery.resolve(items, delay: defaultDelay, maxDelay: maxDelay, timeout: timeout)
    }

    private func problem(_ items: [(name: String, value: String)], timeout: GoDuration? = nil) -> QueryProblem? {
        do {
            _ = try resolve(items, timeout: timeout)
            return nil
        } catch {
            return error
        }
    }

    @Test("no parameters: the configured delay and timeout")
    func defaults() throws {
        #expect(try resolve([]) == GreetingQuery(delay: defaultDelay, timeout: nil))
        #expect(try resolve([("other", "1s")], timeout: .seconds(30)) == GreetingQuery(delay: defaultDelay, timeout: .seconds(30)))
        #expect(try !resolve([]).delayWasCapped)
    }

    @Test("?delay= sets the delay; the first one counts; zero is allowed")
    func delay() throws {
        let query = try resolve([("delay", "250ms"), ("delay", "9s")])
        #expect(query.delay == .milliseconds(250))
        #expect(query.requestedDelay == .milliseconds(250))
        #expect(!query.delayWasCapped)
        #expect(try resolve([("delay", "0")]).delay == .zero)
        #expect(try resolve([("delay", "-0")]).delay == .zero)
    }

    @Test("?delay= above --max-delay is capped, and says so")
    func delayCapped() throws {
        let query = try resolve([("delay", "2h")])
        #expect(query.delay == maxDelay)
        #expect(query.requestedDelay == GoDuration.seconds(7_200))
        #expect(query.delayWasCapped)
        #expect(try !resolve([("delay", "1m")]).delayWasCapped)  // exactly the cap is not capped
    }

    @Test("?timeout= without --timeout is the deadline; ?timeout=0 expires at once (Go's WithTimeout(0))")
    func timeoutAlone() throws {
        #expect(try resolve([("timeout", "1.5s")]).timeout == .milliseconds(1_500))
        #expect(try resolve([("timeout", "0s")]).timeout == .zero)
    }

    @Test("?timeout= may shorten --timeout, never lengthen it")
    func timeoutCapped() throws {
        #expect(try resolve([("timeout", "2s")], timeout: .seconds(30)).timeout == .seconds(2))
        #expect(try resolve([("timeout", "2m")], timeout: .seconds(30)).timeout == .seconds(30))
    }

    @Test("bad values: Go's parse error or 'must not be negative', in the 400 body's words")
    func problems() {
        #expect(problem([("delay", "5x")]) == .badDuration("delay", "5x", .unknownUnit(unit: "x", input: "5x")))
        #expect(problem([("delay", "5x")])?.description == #"invalid delay "5x": time: unknown unit "x" in duration "5x""#)
        #expect(problem([("delay", "")])?.description == #"invalid delay "": time: invalid duration """#)
        #expect(problem([("timeout", "-1s")]) == .negative("timeout", "-1s"))
        #expect(problem([("delay", "-1s")])?.description == #"invalid delay "-1s": must not be negative"#)
        #expect(problem([("timeout", "-1ns")], timeout: .seconds(30))?.description == #"invalid timeout "-1ns": must not be negative"#)
        // delay is checked first
        #expect(problem([("timeout", "bad"), ("delay", "-1s")]) == .negative("delay", "-1s"))
    }

    @Test("client bytes in a 400 body are quoted: one line of ASCII")
    func quoting() {
        let body = problem([("delay", "1s\r\nX-Injected: 1")])?.description ?? ""
        #expect(body.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7f })
        #expect(body.contains(#""1s\x0d\x0aX-Injected: 1""#))
        #expect(QueryProblem.malformedQuery("a=%zz\n").description == #"invalid query string "a=%zz\x0a""#)
    }

    @Test("a 60 KB value is cut in the 400 body, with a marker, and never echoed whole")
    func hugeValueIsCut() {
        let text = String(repeating: "9", count: 60 * 1024) + "x"
        for problem in [QueryProblem.badDuration("delay", text, .invalid(text)), .negative("delay", "-" + text),
                        .malformedQuery(text)] {
            let body = problem.description
            #expect(body.utf8.count < 2 * loggedTargetLimit, "\(body.utf8.count) bytes")
            #expect(body.contains("(cut, "), "\(body.prefix(80))")
        }
    }
}
