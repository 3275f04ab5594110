// libFuzzer target: the query path of `GET /?delay=…&timeout=…`, on the server's own rules.
//
// Built by scripts/fuzz.sh against the GreetdRules module (where `GreetingQuery.resolve` and
// `QueryProblem` live, the very code the server runs) and libevent's C API (`-I Modules/CLibevent
// -levent`, no Swift layer).
//
// What greetd does with a request's query, step by step, and what is checked here:
// 1. `LoopRequest.queryItems()`: `evhttp_parse_query_str` into an `evkeyvalq`, each key and value
//    read with `String(cString:)`, then `evhttp_clear_headers`. Run here through CLibevent on
//    the raw bytes (libevent's own parser on anything), and on the query as greetd holds it (a
//    Swift string: cut at NUL, invalid UTF-8 repaired). Every list is freed (ASan's leak check
//    sees any that is not).
// 2. `GreetingQuery.resolve`: the first `delay` and the first `timeout` as Go durations, negative
//    values refused, `delay` capped at `--max-delay`, `timeout` at `--timeout` when set; run
//    for both configurations (no `--timeout`, and `--timeout 30s`).
// 3. The values become timers (`Duration.timerInterval`, what `Event.add(timeout:)` hands to
//    `event_add`) and a context deadline (`ContinuousClock.now + timeout`).
// 4. The fast path the server runs (`RawGreetingQuery`: one pass over the raw query's bytes)
//    gives the same GreetingQuery or the same QueryProblem (and 400 text) as the reference split
//    (`GreetingQuery.items(ofQuery:)`, Go's rules: empty arguments skipped, a name without `=`
//    has an empty value; checked equal to evhttp's split wherever evhttp accepts the query)
//    plus step 2, for both configurations, and the same `stream`/`async` flags.
// Properties: nothing traps; every accepted delay is in 0...max-delay and equals the asked value
// capped (and `delayWasCapped` says whether it was); every timeout is in 0...asked and never above
// the configured one; each timer is a valid timeval (0 <= tv_usec < 1_000_000) no shorter than
// its duration and less than a microsecond longer; every 400 body (the quoted query or value, the
// parse error) is ASCII without CR, LF or other bytes below 0x20 (DEL passes, as in Go).

import CLibevent
import EventHTTPDuration
import GreetdRules
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EventHTTPSystem

private func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("query property violated: \(message())") }
}

private func printableASCII(_ s: String) -> Bool {
    s.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x80 }  // DEL passes, as in Go's quote
}

/// greetd's defaults: `--delay 5s`, `--max-delay 1m0s`; `--timeout` unset, or set.
private let defaultDelay = GoDuration.seconds(5)
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

/// What `Event.add(timeout:)` hands to `event_add`: valid, never early, less than 1 µs late.
private func checkTimer(_ d: GoDuration, _ what: String) {
    let (seconds, micros) = d.duration.timerInterval
    check(seconds >= 0 && micros >= 0 && micros < 1_000_000, "\(what) \(d) gives timeval \(seconds)s \(micros)us")
    let timer = Duration.seconds(seconds) + .microseconds(micros)
    check(timer >= d.duration && timer - d.duration < .microseconds(1), "\(what) \(d) gives timer \(timer)")
}

/// The value of the first item named `name`, parsed as the rules read it, if it is acceptable.
private func asked(_ items: [(name: String, value: String)], _ name: String) -> GoDuration?? {
    guard let text = items.first(where: { $0.name == name })?.value else { return .some(nil) }
    guard let value = try? GoDuration(parsing: text), value >= .zero else { return nil }
    return .some(value)
}

private func greeting(_ items: [(name: String, value: String)]) {
    for configured in configuredTimeouts {
        let query: GreetingQuery
        do {
            query = try GreetingQuery.resolve(items, delay: defaultDelay, maxDelay: maxDelay, timeout: configured)
        } catch {
            let body = error.description
            check(printableASCII(body), "400 body with control or non-ASCII bytes: \(Array(body.utf8))")
            check(asked(items, "delay") == nil || asked(items, "timeout") == nil, "refused a query with good values: \(body)")
            continue
        }
        guard case .some(let delayAsked) = asked(items, "delay"), case .some(let timeoutAsked) = asked(items, "timeout") else {
            check(false, "accepted a query with a bad value: \(items)")
            return
        }
        check(query.requestedDelay == delayAsked, "requestedDelay \(String(describing: query.requestedDelay)) for \(items)")
        check(query.delay == (delayAsked.map { min($0, maxDelay) } ?? defaultDelay), "delay \(query.delay) for \(items)")
        check(query.delay >= .zero && query.delay <= maxDelay, "delay \(query.delay) outside 0...\(maxDelay)")
        check(query.delayWasCapped == (delayAsked.map { $0 > maxDelay } ?? false), "delayWasCapped wrong for \(items)")
        checkTimer(query.delay, "delay")
        _ = Int(query.delay.nanoseconds / 1_000_000_000)  // ticksDue with --tick 1s

        switch (configured, timeoutAsked) {
        case (nil, nil): check(query.timeout == nil, "a timeout out of nothing: \(String(describing: query.timeout))")
        case (let c?, nil): check(query.timeout == c, "timeout \(String(describing: query.timeout)) instead of \(c)")
        case (nil, let a?): check(query.timeout == a, "timeout \(String(describing: query.timeout)) instead of \(a)")
        case (let c?, let a?): check(query.timeout == min(c, a), "timeout \(String(describing: query.timeout)) for \(a) under \(c)")
        }
        if let timeout = query.timeout {
            check(timeout >= .zero, "negative timeout \(timeout)")
            checkTimer(timeout, "timeout")
            _ = ContinuousClock.now + timeout.duration  // the context's deadline
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
    // 1c. The reference split (Go's rules: empty arguments skipped, a name without `=` has an
    // empty value). Where evhttp splits the query too, the two must agree item for item.
    let items = GreetingQuery.items(ofQuery: query)
    if let evhttpItems = queryItems(query) {
        check(evhttpItems.count == items.count && zip(evhttpItems, items).allSatisfy { $0.name == $1.name && $0.value == $1.value },
              "reference split \(items) differs from evhttp's \(evhttpItems) for \(Array(query.utf8))")
    }
    for item in items {
        check(!item.name.utf8.contains(UInt8(ascii: "&")) && !item.value.utf8.contains(0), "item \(item) holds a separator or a NUL")
    }
    greeting(items)
    fastPath(query, items)
    return 0
}

/// 4. `RawGreetingQuery` (the server's fast path, over the raw bytes) against the reference path
/// (`GreetingQuery.items(ofQuery:)`, then `GreetingQuery.resolve`): the same query or the same problem, for every
/// configuration, and the same `stream`/`async` flags.
private func fastPath(_ query: String, _ items: [(name: String, value: String)]) {
    let raw: RawGreetingQuery
    do {
        raw = try RawGreetingQuery(query)
    } catch {
        check(false, "fast path refused a query (every query splits): \(error)")
        return
    }
    func flag(_ name: String) -> Bool { items.first { $0.name == name }?.value == "1" }
    check(raw.asksForStream == flag("stream"), "stream flag \(raw.asksForStream) for \(items)")
    check(raw.asksForAsync == flag("async"), "async flag \(raw.asksForAsync) for \(items)")
    for configured in configuredTimeouts {
        let reference = Result { () throws(QueryProblem) in
            try GreetingQuery.resolve(items, delay: defaultDelay, maxDelay: maxDelay, timeout: configured)
        }
        let fast = Result { () throws(QueryProblem) in
            try raw.resolve(delay: defaultDelay, maxDelay: maxDelay, timeout: configured)
        }
        check(fast == reference, "fast path \(fast) != reference \(reference) for \(Array(query.utf8))")
        if case .failure(let a) = fast, case .failure(let b) = reference {
            check(a.description == b.description, "400 texts differ: \(a) vs \(b)")
        }
    }
}
