// libFuzzer target: the query path of `GET /?delay=…&timeout=…`.
//
// Built by scripts/fuzz.sh with Sources/GreetdCore/GoDuration.swift and the few files of
// Sources/Libevent that `timeval(duration:)` needs (Event, EventBase, LibeventError,
// LoopConfinement, LibeventCounters), `-I Modules/CLibevent` and `-levent`.
//
// What greetd does with a request's query, step by step, and what is checked here:
// 1. `HTTPRequest.queryItems()`: `evhttp_parse_query_str` into an `evkeyvalq`, each key and value
//    read with `String(cString:)`, then `evhttp_clear_headers`. Run here through CLibevent on
//    the raw bytes (libevent's own parser on anything), and on the query as greetd holds it (a
//    Swift string: cut at NUL, invalid UTF-8 repaired). Every list is freed (ASan's leak check
//    sees any that is not).
// 2. `GreetingServer.greetingParameters` / `parseParameter`: the first `delay` and the first
//    `timeout` are parsed as Go durations; negative values are refused; `delay` is capped at
//    `--max-delay` (1m0s by default), `timeout` at `--timeout` when set. Those functions are
//    private to GreetingServer (with QueryProblem, HTTPRequest.queryItems): unreachable without
//    all of GreetdCore, so the same three steps are spelled out here on the real parser.
// 3. `Greeting.start`: the values become libevent timers (`timeval(duration:)`, the real one)
//    and a context deadline (`ContinuousClock.now + timeout`).
// Properties: nothing traps; every accepted value is in 0...cap; each timer is a valid timeval
// (tv_sec >= 0, 0 <= tv_usec < 1_000_000) equal to the duration rounded down to the microsecond;
// every 400 body built from the input (the quoted query or value, the parse error) is printable
// ASCII: no CR, LF or other control bytes.

import CLibevent
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

private func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("query property violated: \(message())") }
}

private func printableASCII(_ s: String) -> Bool {
    s.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x80 }
}

/// greetd's defaults: `--max-delay 1m0s`; `--timeout` unset, or set (both configurations).
private let maxDelay = GoDuration.seconds(60)
private let configuredTimeouts: [GoDuration?] = [nil, .seconds(30)]

/// `evhttp_parse_query_str` into a list, read as greetd reads it, freed. `nil`: malformed.
private func queryItems(_ query: UnsafePointer<CChar>) -> [(name: String, value: String)]? {
    var list = evkeyvalq()
    guard evhttp_parse_query_str(query, &list) == 0 else {
        // libevent empties the list itself on failure; clearing again must be harmless.
        evhttp_clear_headers(&list)
        check(list.tqh_first == nil, "evhttp_clear_headers left entries")
        return nil
    }
    defer {
        evhttp_clear_headers(&list)
        check(list.tqh_first == nil, "evhttp_clear_headers left entries")
    }
    var items: [(name: String, value: String)] = []
    var cursor = list.tqh_first
    while let entry = cursor {
        check(entry.pointee.key != nil && entry.pointee.value != nil, "entry without key or value")
        items.append((String(cString: entry.pointee.key), String(cString: entry.pointee.value)))
        cursor = entry.pointee.next.tqe_next
    }
    return items
}

private enum Parameter {
    case accepted(GoDuration)
    case refused(String)  // the 400 body, as greetd words it
}

/// `parseParameter`: Go duration, not negative.
private func parameter(_ name: String, _ text: String) -> Parameter {
    let value: GoDuration
    do {
        value = try GoDuration(parsing: text)
    } catch {
        let message = error.description
        check(!message.isEmpty, "empty parse error for \(name)")
        return .refused("invalid \(name) \(goQuote(text)): \(message)")
    }
    if value.nanoseconds < 0 { return .refused("invalid \(name) \(goQuote(text)): must not be negative") }
    return .accepted(value)
}

/// What `Event.add(timeout:)` hands to `event_add`.
private func checkTimer(_ d: GoDuration, _ what: String) {
    let tv = timeval(duration: d.duration)
    check(tv.tv_sec >= 0 && tv.tv_usec >= 0 && tv.tv_usec < 1_000_000, "\(what) \(d) gives timeval \(tv.tv_sec)s \(tv.tv_usec)us")
    let micros = d.nanoseconds / 1_000
    check(Int64(tv.tv_sec) == micros / 1_000_000 && Int64(tv.tv_usec) == micros % 1_000_000,
          "\(what) \(d) gives timeval \(tv.tv_sec)s \(tv.tv_usec)us")
}

private func greeting(_ items: [(name: String, value: String)]) {
    var delay = GoDuration.seconds(5)
    if let text = items.first(where: { $0.name == "delay" })?.value {
        switch parameter("delay", text) {
        case .accepted(let asked):
            delay = min(asked, maxDelay)
            check(delay.nanoseconds >= 0 && delay <= maxDelay, "delay \(delay) outside 0...\(maxDelay)")
        case .refused(let body):
            check(printableASCII(body), "400 body with control or non-ASCII bytes: \(Array(body.utf8))")
            return
        }
    }
    checkTimer(delay, "delay")
    _ = Int(delay.nanoseconds / 1_000_000_000)  // ticksDue with --tick 1s

    if let text = items.first(where: { $0.name == "timeout" })?.value {
        switch parameter("timeout", text) {
        case .accepted(let asked):
            for configured in configuredTimeouts {
                let timeout = configured.map { min($0, asked) } ?? asked
                check(timeout.nanoseconds >= 0 && timeout <= asked, "timeout \(timeout) for asked \(asked)")
                checkTimer(timeout, "timeout")
                _ = ContinuousClock.now + timeout.duration  // the context's deadline
            }
        case .refused(let body):
            check(printableASCII(body), "400 body with control or non-ASCII bytes: \(Array(body.utf8))")
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    // 1a. libevent's parser on the raw bytes, up to the first NUL (it takes a C string).
    var raw = Array(UnsafeBufferPointer(start: data, count: size))
    if let nul = raw.firstIndex(of: 0) { raw.removeSubrange(nul...) }
    raw.append(0)
    _ = raw.withUnsafeBufferPointer { buffer in
        buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) { queryItems($0) }
    }

    // 1b. As greetd holds it: `request.query` is `String(cString: evhttp_uri_get_query(...))`.
    let query = raw.withUnsafeBufferPointer { buffer in
        buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) { String(cString: $0) }
    }
    guard let items = queryItems(query) else {
        // QueryProblem.malformedQuery: the 400 body quotes the whole query.
        let body = "invalid query string \(goQuote(query))"
        check(printableASCII(body), "400 body with control or non-ASCII bytes: \(Array(body.utf8))")
        return 0
    }
    for item in items {
        check(!item.name.isEmpty, "query item with an empty name")
    }
    greeting(items)
    return 0
}
