import ArgumentParser
import GreetdRules
import EventHTTPSystem
import EventHTTPCore
import EventHTTPDuration
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The `greet-stress` command: parses and checks the flags, runs the load on the main thread,
/// prints the summary, and exits 0 (every check holds), 1 (one does not, or `/metrics` cannot
/// be read) or 64 (a usage error, from ArgumentParser).
@main
struct GreetStress: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "greet-stress",
        abstract: "A load generator of aborting clients, checked against greetd's /metrics.",
        discussion: """
            Opens up to --connections connections to --host:--port (loopback by default; it \
            connects only where told), sends --requests requests in all, each \
            "GET <path> HTTP/1.1" with "X-Request-Id: stress-<n>" and "Connection: close", and \
            gives up on each at a random time within --abort-after of sending it: a FIN (close), \
            an RST (SO_LINGER 0, close) or a half-close (shutdown(SHUT_WR), then reading until the \
            server closes), per --abort-style. --complete-fraction of the requests wait for their \
            answer instead.

            --path must make the server think longer than the largest --abort-after (the default \
            /?delay=2s does for the default 50ms-500ms): an abort that crosses the server's \
            answer makes the two sides count that request differently. A request whose complete \
            answer arrives before its abort time counts as completed; one aborted before any \
            answer byte counts as aborted; a non-200 answer or a connection the server closed \
            first counts as an error. A half-closed request waits up to --settle (at least 1s) \
            for the server to close; one still open then fails the run, and answers the server \
            sent before closing (Go's net/http sends 500) are reported, not failed.

            With --stream, each request carries "Accept: text/event-stream" and its \
            server-sent events are parsed as they arrive and counted by type (thinking, \
            greeting, error). An aborting request may already have received the head and \
            thinking events: it aborts unless a greeting or error event has arrived (then the \
            stream is over and its end is awaited). A completed stream must be a 200 \
            text/event-stream that ended with a greeting event; one that ended with an error \
            event counts as an error ("stream_error: <data>"), and the greeting events must equal \
            the completed requests. The /metrics checks are the same.

            Unless --no-verify, /metrics is read before the run, every 500 ms during it (peak \
            memory) and after it, and the run passes only if \(MetricName.requests) \
            {\(MetricName.outcomeLabel)="\(MetricName.Outcome.canceled.rawValue)"} grew by the aborted count, \
            {\(MetricName.outcomeLabel)="\(MetricName.Outcome.completed.rawValue)"} by the \
            completed count, \(MetricName.requestsInFlight) came back to its starting value within \
            --settle, and no request ended in an error. Connects put off because this machine ran \
            short (EMFILE, ENFILE, EADDRNOTAVAIL) are retried after a short back-off and \
            reported, not failed. The soft open-files limit is raised to the hard limit.

            The run stops opening at --duration, aborts what is open, and reports (the \
            "requests finished" check then fails). Ctrl+C does the same. Progress goes to \
            standard output (standard error with --json): one line rewritten every 250 ms on a \
            terminal, a line a second otherwise. Durations use Go's syntax: 0, 250ms, 1.5s, 2m.

            Exit status: 0 if every check holds, 1 if one fails or /metrics cannot be read, 64 \
            for a usage error.
            """,
        // The same string greetd prints: the two ship together.
        version: greetdVersion
    )

    @Option(help: "Host to connect to: an address or a name (first address it resolves to).")
    var host = "127.0.0.1"

    // Numeric options parse `.unconditional`ly: a value such as `-1` is taken as the value (and
    // refused by validate() in words), not mistaken for a flag ("Missing value").
    @Option(parsing: .unconditional, help: "TCP port to connect to, 1-65535.")
    var port = 8080

    @Option(parsing: .unconditional, help: "Most connections open at once.")
    var connections = 100

    @Option(parsing: .unconditional, help: "Requests in all (each on its own connection).")
    var requests = 1000

    @Option(parsing: .unconditional, help: "New connections per second; 0 opens them as fast as --connections allows.")
    var rate = 0.0

    @Option(parsing: .unconditional,
            help: "When an aborting request gives up, after its request was sent: a range LOW-HIGH (uniformly random) or one duration. (default: 50ms-500ms)",
            transform: { text throws in try AbortWindow(parsing: text) })
    var abortAfter = try! AbortWindow(parsing: "50ms-500ms")

    @Option(help: "How aborting requests give up: fin (close), rst (SO_LINGER 0, close), half (shutdown(SHUT_WR), read until the server closes), or mix (a random one per request).")
    var abortStyle = AbortStyleChoice.mix

    @Option(parsing: .unconditional, help: "Fraction of requests (0...1) that wait for their answer instead of aborting.")
    var completeFraction = 0.0

    @Option(help: "Request target. The server must think longer than the largest --abort-after, so that aborts come before the answer.")
    var path = "/?delay=2s"

    @Option(parsing: .unconditional,
            help: "Hard limit on the load: past it, stop opening, abort what is open, and report (after --settle). (default: 1m0s)",
            transform: { text throws in try GoDuration(parsing: text) })
    var duration: GoDuration = .seconds(60)

    @Option(parsing: .unconditional,
            help: "How long to wait after the last abort for the server's in-flight gauge to return to its starting value. (default: 5s)",
            transform: { text throws in try GoDuration(parsing: text) })
    var settle: GoDuration = .seconds(5)

    @Flag(help: "Print one JSON object instead of the table (errors too), with the plan under \"plan\".")
    var json = false

    @Option(help: "Path of the server's Prometheus metrics.")
    var metricsPath = "/metrics"

    @Flag(help: "Ask for the streaming greeting (Accept: text/event-stream), read and count its events while waiting, and check that every completed request ended with a greeting event.")
    var stream = false

    @Flag(help: "Skip the /metrics checks (for servers without them, such as a Go reference server).")
    var noVerify = false

    @Option(parsing: .unconditional,
            help: "Seed for the random abort times and styles; the summary prints the one used, so a run can be repeated. (default: a random seed)")
    var seed: UInt64?

    /// Usage errors ArgumentParser cannot see by type (exit 64).
    func validate() throws {
        guard (1...65535).contains(port) else { throw ValidationError("--port must be between 1 and 65535") }
        guard connections >= 1 else { throw ValidationError("--connections must be at least 1") }
        guard requests >= 1 else { throw ValidationError("--requests must be at least 1") }
        guard rate >= 0, rate.isFinite else { throw ValidationError("--rate must be 0 or more") }
        guard (0...1).contains(completeFraction) else { throw ValidationError("--complete-fraction must be between 0 and 1") }
        guard duration > .zero else { throw ValidationError("--duration must be positive") }
        guard settle >= .zero else { throw ValidationError("--settle must not be negative") }
        guard path.hasPrefix("/"), !path.contains(where: \.isWhitespace) else {
            throw ValidationError("--path must start with / and contain no spaces")
        }
        guard metricsPath.hasPrefix("/"), !metricsPath.contains(where: \.isWhitespace) else {
            throw ValidationError("--metrics-path must start with / and contain no spaces")
        }
        guard !host.isEmpty, !host.contains(where: { $0.isWhitespace || $0 == "/" }) else {
            throw ValidationError("--host must be an address or a host name")
        }
    }

    /// The flags as a ``StressPlan``.
    var plan: StressPlan {
        StressPlan(host: host, port: UInt16(port), connections: connections, requests: requests, rate: rate,
                   abortWindow: abortAfter, abortStyle: abortStyle, completeFraction: completeFraction,
                   path: path, duration: duration.duration, settle: settle.duration, json: json, metricsPath: metricsPath,
                   verify: !noVerify, stream: stream, seed: seed ?? UInt64.random(in: 0...UInt64.max))
    }

    /// Parses, validates and runs like ArgumentParser's own `main()`; with `--json`, a usage
    /// error is also printed as one JSON object on standard output (the run's own errors are
    /// printed by ``run()``), so that standard output is always JSON.
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if arguments.contains("--json"), !(error is ExitCode), code != .success {
                Output.standardOutput.write(jsonError(message(for: error), exitCode: code.rawValue, plan: nil))
            }
            exit(withError: error)
        }
    }

    /// Raises the open-files limit, runs the load, prints the summary (table or JSON).
    func run() throws {
        let plan = self.plan
        let report: StressReport
        do throws(StressFailure) {
            OpenFileLimit.raiseToHardLimit()
            report = try runLoad(plan)
        } catch {
            Output.standardError.write("greet-stress: error: \(error)\n")
            if plan.json { Output.standardOutput.write(jsonError("\(error)", exitCode: 1, plan: plan)) }
            throw ExitCode(1)
        }
        Output.standardOutput.write(plan.json ? report.json() : report.table())
        if !report.ok { throw ExitCode(1) }
    }
}

/// Why a run could not produce a report.
enum StressFailure: Error, CustomStringConvertible {
    /// The host did not resolve, or the loop or a timer could not be made.
    case libevent(LibeventError)
    /// The run could not start or broke: `/metrics` unreadable before it, a timer that failed.
    case run(String)

    var description: String {
        switch self {
        case .libevent(let error): return "\(error)"
        case .run(let message): return message
        }
    }
}

/// Resolves the host, then runs the whole load on one base on this thread.
private func runLoad(_ plan: StressPlan) throws(StressFailure) -> StressReport {
    let base: EventBase
    let address: IPEndpoint
    do throws(LibeventError) {
        address = try IPEndpoint.resolve(host: plan.host, port: plan.port)[0]
        base = try EventBase()
    } catch {
        throw .libevent(error)
    }
    if base.method == "select" && OpenFileLimit.capForSelect() {
        Output.standardError.write("greet-stress: select backend: open files limited to \(FD_SETSIZE) (FD_SETSIZE); connects past it are retried\n")
    }
    return try runLoad(plan, address: address, base: base)
}

/// Runs the load on `base` until the verdict. The run, and every event it owns, dies in here,
/// while the caller still holds the base.
private func runLoad(_ plan: StressPlan, address: IPEndpoint, base: EventBase) throws(StressFailure) -> StressReport {
    let run: LoadRun
    do throws(LibeventError) {
        run = try LoadRun(plan: plan, address: address, base: base,
                          progress: plan.json ? .standardError : .standardOutput)
        try run.start()
        if run.phase != .finished { try base.run() }
    } catch {
        throw .libevent(error)
    }
    run.finish()  // a no-op unless the loop ran dry early
    if let failure = run.failure { throw .run(failure) }
    return makeReport(run)
}

/// The checks, from the run's counts and its `/metrics` readings.
private func makeReport(_ run: LoadRun) -> StressReport {
    let plan = run.plan
    let tally = run.tally
    var checks: [Check] = []
    var notes: [String] = []
    if plan.verify, let before = run.before {
        let after = run.after
        checks.append(Check("canceled delta == aborted", expected: tally.aborted, actual: after.map { $0.canceled - before.canceled }))
        checks.append(Check("completed delta == completed", expected: tally.completed, actual: after.map { $0.completed - before.completed }))
        checks.append(Check("in-flight back to start (\(GoDuration(plan.settle)))", expected: before.inFlight, actual: after?.inFlight))
        if let problem = run.afterProblem { notes.append(problem) }
    }
    if tally.opened == 0, tally.errors[Errno.connectionRefused.name, default: 0] > 0 {
        notes.append("no connection was accepted: the server is not reachable at \(run.address) (nothing listens there)")
    }
    if plan.stream {
        checks.append(Check("greeting events == completed", expected: tally.completed, actual: tally.events[GreetingStream.greeting, default: 0]))
    }
    checks.append(Check("requests ending in errors", expected: 0, actual: tally.errorCount))
    checks.append(Check("half-closes left open by server", expected: 0, actual: tally.halfClosesLeftOpen))
    checks.append(Check("requests finished", expected: plan.requests, actual: tally.finished))
    return StressReport(
        plan: plan, target: "\(run.address)", tally: tally, elapsed: run.elapsed,
        rssBefore: run.before?.residentBytes, rssPeak: run.peakResidentBytes, rssAfter: run.after?.residentBytes,
        checks: checks, stopReason: run.stopReason, notes: notes)
}

extension AbortStyleChoice: ExpressibleByArgument {}
