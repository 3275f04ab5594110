import GreetdClient
import GreetdRules
import EventHTTPCore
import EventHTTPDuration
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The client's counts for one run.
struct Tally: Sendable {
    /// Requests handed a socket (the connect started).
    var started = 0
    /// Connections that connected.
    var opened = 0
    var aborted = 0
    var abortedByStyle: [ClientAbort: Int] = [:]
    var completed = 0
    /// Requests that ended otherwise, by name (see ``RequestOutcome/error(_:)``).
    var errors: [String: Int] = [:]
    /// Connects put off and tried again after the machine ran short (`EMFILE`, `ENFILE`,
    /// `EADDRNOTAVAIL`, `ENOBUFS`, `ENOMEM`), by errno name. Not outcomes: the request was retried.
    var retries: [String: Int] = [:]
    /// Half-closed requests the server answered before closing, by `status_<code>`: reported,
    /// not failed (greetd closes at once; Go's `net/http` answers `500 context canceled`).
    var halfCloseAnswers: [String: Int] = [:]
    /// Half-closed connections the server had not closed after the linger limit (`--settle`,
    /// at least 1s): it never noticed that the client was gone.
    var halfClosesLeftOpen = 0
    /// `/metrics` reads during the run that failed (the run goes on).
    var metricsPollFailures = 0
    /// Server-sent events received (`--stream`), by type: `thinking`, `greeting`, `error`, or
    /// whatever else the server sent.
    var events: [String: Int] = [:]

    var errorCount: Int { errors.values.reduce(0, +) }
    /// Requests with an outcome.
    var finished: Int { aborted + completed + errorCount }

    mutating func record(_ outcome: RequestOutcome) {
        switch outcome {
        case .completed: completed += 1
        case .aborted(let style):
            aborted += 1
            abortedByStyle[style, default: 0] += 1
        case .error(let name): errors[name, default: 0] += 1
        }
    }
}

/// One value in a check: a number, or words when there is no number (`unreadable`).
enum CheckValue: Equatable, Sendable, CustomStringConvertible {
    case number(Int)
    case text(String)

    var description: String {
        switch self {
        case .number(let value): return "\(value)"
        case .text(let text): return text
        }
    }

    var json: String {
        switch self {
        case .number(let value): return "\(value)"
        case .text(let text): return jsonString(text)
        }
    }
}

/// One line of the verdict: what was expected, what was seen.
struct Check: Sendable {
    let name: String
    let expected: CheckValue
    let actual: CheckValue
    let ok: Bool

    init(_ name: String, expected: Int, actual: Int?) {
        self.name = name
        self.expected = .number(expected)
        self.actual = actual.map(CheckValue.number) ?? .text("unreadable")
        self.ok = actual == expected
    }
}

/// Everything a run found: counts, memory, checks, and the verdict.
struct StressReport: Sendable {
    let plan: StressPlan
    let target: String
    let tally: Tally
    let elapsed: Duration
    let rssBefore: Int?
    let rssPeak: Int?
    let rssAfter: Int?
    let checks: [Check]
    /// Why the run stopped early (`--duration`, Ctrl+C), if it did.
    let stopReason: String?
    /// Problems reading `/metrics` after the run, worth a line of their own.
    let notes: [String]

    var ok: Bool { checks.allSatisfy(\.ok) }

    /// The human summary: the counts, then an aligned table of checks, then the verdict.
    func table() -> String {
        var lines: [String] = []
        let styles = ClientAbort.allCases.compactMap { style in tally.abortedByStyle[style].map { "\(style.rawValue) \($0)" } }
        lines.append("greet-stress: \(count(plan.requests, plan.stream ? "streaming request" : "request")) to \(target)\(plan.path), \(count(plan.connections, "connection")), "
            + "abort after \(plan.abortWindow), style \(plan.abortStyle.rawValue), complete fraction \(plan.completeFraction), seed \(plan.seed)")
        var counts: [(String, String)] = [
            ("requests", "\(plan.requests)"),
            ("opened", "\(tally.opened)"),
            ("aborted", "\(tally.aborted)" + (styles.isEmpty ? "" : "  (\(styles.joined(separator: ", ")))")),
            ("completed", "\(tally.completed)"),
            ("errors", "\(tally.errorCount)" + (tally.errors.isEmpty ? "" : "  (\(Self.list(tally.errors)))")),
            ("elapsed", formatSeconds(elapsed)),
        ]
        if plan.stream {
            counts.append(("events", "\(tally.events.values.reduce(0, +))" + (tally.events.isEmpty ? "" : "  (\(Self.list(tally.events)))")))
        }
        if !tally.retries.isEmpty { counts.append(("retried", Self.list(tally.retries) + " (connects put off, then retried)")) }
        if !tally.halfCloseAnswers.isEmpty {
            counts.append(("half-close", "answered before the close: \(Self.list(tally.halfCloseAnswers))"))
        }
        if plan.verify {
            counts.append(("rss", "before \(mebibytes(rssBefore)), peak \(mebibytes(rssPeak)), after \(mebibytes(rssAfter))"))
        }
        if tally.metricsPollFailures > 0 { counts.append(("metrics", "\(tally.metricsPollFailures) reads during the run failed")) }
        let labelWidth = counts.map(\.0.count).max() ?? 0
        for (label, value) in counts { lines.append("  " + pad(label, labelWidth) + "  " + value) }
        if let stopReason { lines.append("stopped early: \(stopReason)") }
        lines.append(contentsOf: notes)
        lines.append("")
        let header = ["check", "expected", "actual", "ok"]
        let rows = checks.map { [$0.name, $0.expected.description, $0.actual.description, $0.ok ? "yes" : "NO"] }
        let widths = (0..<4).map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        for row in [header] + rows {
            let cells = [pad(row[0], widths[0]), padLeft(row[1], widths[1]), padLeft(row[2], widths[2]), row[3]]
            lines.append(cells.joined(separator: "  "))
        }
        lines.append("")
        lines.append(ok ? "PASS" : "FAIL")
        return lines.joined(separator: "\n") + "\n"
    }

    /// One JSON object, on one line.
    func json() -> String {
        func object(_ counts: [String: Int]) -> String {
            "{" + counts.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\($0.value)" }.joined(separator: ",") + "}"
        }
        func number(_ value: Int?) -> String { value.map { "\($0)" } ?? "null" }
        let checks = self.checks.map {
            "{\"name\":\(jsonString($0.name)),\"expected\":\($0.expected.json),\"actual\":\($0.actual.json),\"ok\":\($0.ok)}"
        }
        let styles = Dictionary(uniqueKeysWithValues: tally.abortedByStyle.map { ($0.key.rawValue, $0.value) })
        let fields: [(String, String)] = [
            ("requests", "\(plan.requests)"),
            // A string: a UInt64 above 2^53 loses digits in JSON readers that hold numbers as
            // doubles (jq, JavaScript), and the seed must repeat a run exactly.
            ("seed", jsonString("\(plan.seed)")),
            ("opened", "\(tally.opened)"),
            ("aborted", "\(tally.aborted)"),
            ("completed", "\(tally.completed)"),
            ("errors", object(tally.errors)),
            ("elapsed_seconds", String(format3: elapsed.secondsValue)),
            ("rss_before", number(rssBefore)),
            ("rss_peak", number(rssPeak)),
            ("rss_after", number(rssAfter)),
            ("checks", "[" + checks.joined(separator: ",") + "]"),
            ("ok", "\(ok)"),
            ("target", jsonString(target)),
            ("aborted_by_style", object(styles)),
            ("retries", object(tally.retries)),
            ("half_close_answers", object(tally.halfCloseAnswers)),
            ("half_closes_left_open", "\(tally.halfClosesLeftOpen)"),
            ("events", object(tally.events)),
            ("stopped_early", stopReason.map(jsonString) ?? "null"),
            ("notes", "[" + notes.map(jsonString).joined(separator: ",") + "]"),
            ("plan", plan.jsonObject),
        ]
        return "{" + fields.map { "\(jsonString($0.0)):\($0.1)" }.joined(separator: ",") + "}\n"
    }

    private static func list(_ counts: [String: Int]) -> String {
        counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    }
}

/// `text` as a JSON string literal.
func jsonString(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20:
            let hex = String(scalar.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

/// The object greet-stress prints on standard output under `--json` when it cannot report:
/// `{"ok":false,"error":"…","exit_code":64}`, with the plan when the flags made one.
func jsonError(_ message: String, exitCode: Int32, plan: StressPlan?) -> String {
    var fields = ["\"ok\":false", "\"error\":\(jsonString(message))", "\"exit_code\":\(exitCode)"]
    if let plan { fields.append("\"plan\":\(plan.jsonObject)") }
    return "{" + fields.joined(separator: ",") + "}\n"
}

extension StressPlan {
    /// The plan as one JSON object: every flag's value as the run used it (durations in Go's
    /// syntax, the seed actually drawn).
    var jsonObject: String {
        let fields: [(String, String)] = [
            ("host", jsonString(host)),
            ("port", "\(port)"),
            ("connections", "\(connections)"),
            ("requests", "\(requests)"),
            ("rate", "\(rate)"),
            ("abort_after", jsonString("\(abortWindow)")),
            ("abort_style", jsonString(abortStyle.rawValue)),
            ("complete_fraction", "\(completeFraction)"),
            ("path", jsonString(path)),
            ("duration", jsonString("\(GoDuration(duration))")),
            ("settle", jsonString("\(GoDuration(settle))")),
            ("metrics_path", jsonString(metricsPath)),
            ("verify", "\(verify)"),
            ("stream", "\(stream)"),
            ("seed", jsonString("\(seed)")),  // a string, as in the summary: see there
        ]
        return "{" + fields.map { "\(jsonString($0.0)):\($0.1)" }.joined(separator: ",") + "}"
    }
}

/// `1 request`, `2 requests`.
func count(_ number: Int, _ noun: String) -> String {
    "\(number) \(noun)\(number == 1 ? "" : "s")"
}

extension String {
    /// `value` with exactly three decimals, without Foundation's `String(format:)`.
    init(format3 value: Double) {
        let thousandths = Int((value * 1000).rounded())
        let whole = thousandths / 1000
        let fraction = thousandths % 1000
        self = "\(whole)." + String(repeating: "0", count: fraction < 10 ? 2 : fraction < 100 ? 1 : 0) + "\(fraction)"
    }
}

/// `1.23s`.
func formatSeconds(_ duration: Duration) -> String {
    var text = String(format3: duration.secondsValue)
    text.removeLast()
    return text + "s"
}

/// `12.3 MiB`, or `n/a`.
private func mebibytes(_ bytes: Int?) -> String {
    guard let bytes else { return "n/a" }
    var text = String(format3: Double(bytes) / 1_048_576)
    text.removeLast(2)
    return text + " MiB"
}

private func pad(_ text: String, _ width: Int) -> String { text + String(repeating: " ", count: max(0, width - text.count)) }
private func padLeft(_ text: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - text.count)) + text }
