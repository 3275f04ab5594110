import EventHTTP
import EventHTTPContext
import EventHTTPDuration
import GreetdRules
import Logging

/// The greeting as an async handler: the seed's loop, where each sleep is a libevent timer
/// (``LoopExecutor/sleep(until:)``) and the client's abort cancels the Task.
///
/// Two modes, one loop:
/// - ``Mode/events``, the streaming (SSE) greeting: `200`, `text/event-stream`, each tick's
///   `event: thinking` written the moment its log line is, then `event: greeting`
///   (or `event: error` with the context's words), then the stream ends.
/// - ``Mode/plain`` (`?async=1`, for the benchmarks): the plain greeting's answers (`200 Hello
///   Gopher!`, `503` past the deadline or at shutdown), from an async handler.
///
/// It follows the timer greeting's rules and lines: ``ThinkingSchedule`` for the ticks;
/// `Handling greeting request`, the ticks, then `Context Error: …` or nothing, then `Handled
/// greeting request`; then the access line. It ends as Go's handler with a child of the root
/// context and the request's deadline would (without allocating one), in Go's words:
/// - the client leaves (FIN, RST, half-close): the server calls ``clientWentAway(_:)`` as the
///   request ends, before the access line; the context error and `Handled` are logged then,
///   and the Task (cancelled by the runner) logs and writes nothing more;
/// - the deadline: the loop sleeps until the earlier of the next tick and the deadline, then
///   ends with `deadlineExceeded`;
/// - shutdown past its budget: the server hands each greeting the root context's end (the
///   lines are logged at once),
///   then the runner cancels the Task (``AsyncRequestRunner/cancelAll(reason:)``), which
///   writes `event: error` / `data: server shutting down` and ends the stream.
///
/// Threading: loop-confined. `@unchecked Sendable` only to enter its handler's Task, which runs
/// on the loop's executor: every entry point checks the thread.
///
/// Ownership: the server's in-flight table holds it until its request ends; the handler's Task
/// holds it (and the server) until the Task ends. The server counts it live in
/// ``GreetdStats/liveGreetings`` until it is freed.
final class AsyncGreeting: ContextObserver, InFlightGreeting, @unchecked Sendable {
    // @unchecked Sendable: every mutable field is touched on
    // the server's loop thread only, checked by `preconditionOnThread` in each entry point.

    /// How the greeting answers.
    enum Mode {
        /// Server-sent events on a streamed response.
        case events
        /// One whole response at the end, like the timer greeting.
        case plain
    }

    // The fields go in this order so that the one-byte ones fill the word after `timeout`
    // (a class's stored properties are laid out as declared), and the query is kept as its two
    // optionals, its delay being the schedule's: 129 B, a 144 B malloc chunk (not 192).

    /// The request's name, for its log lines (the whole ``RequestHead`` would cost about 150 B
    /// more per pending greeting; the schedule keeps its start).
    let id: String
    private let server: GreetingServer
    private var ticksLogged = 0
    private let schedule: ThinkingSchedule
    /// The query's timeout (see ``parameters``).
    private let timeout: GoDuration?
    private let mode: Mode
    /// The greeting's last line (`Handled greeting request`) is logged: nothing more is, no tick.
    private var ended = false
    /// How the greeting ended, once it has.
    private(set) var outcome: RequestOutcome?
    /// What the query's `?delay=` asked for (see ``parameters``).
    private let requestedDelay: GoDuration?

    /// The greeting's query, as resolved: put together again from the fields above (the delay
    /// is the schedule's, `finish - start`, exactly).
    private var parameters: GreetingQuery {
        GreetingQuery(delay: GoDuration(schedule.finish - schedule.start), timeout: timeout, requestedDelay: requestedDelay)
    }

    /// The deadline, from `?timeout=` or `--timeout`: computed, not kept (24 B per pending
    /// greeting).
    private var deadline: ContinuousClock.Instant? {
        timeout.map { schedule.start + $0.duration }
    }

    init(head: RequestHead, mode: Mode, parameters: GreetingQuery, server: GreetingServer) {
        self.id = head.id
        self.mode = mode
        self.timeout = parameters.timeout
        self.requestedDelay = parameters.requestedDelay
        self.server = server
        schedule = ThinkingSchedule(start: head.start, delay: parameters.delay, tick: server.configuration.tick)
        server.stats.liveGreetings.bump()
    }

    deinit {
        server.stats.liveGreetings.bump(-1)
    }

    private func log(_ level: Logger.Level, _ message: @autoclosure () -> Logger.Message,
                     metadata: @autoclosure () -> Logger.Metadata = [:]) {
        // Through the recorder, as the timer greeting's: straight to greetd's handler when the
        // logger adds nothing (no swift-log metadata dictionary per line).
        server.recorder.log(level, request: id, message(), metadata: metadata())
    }

    /// Logs the first lines, on the loop thread, as the request is handed over (before its Task
    /// first runs, so that an abort in between logs its context error after them).
    func start() {
        server.base.thread.preconditionOnThread()
        log(.info, .init(stringLiteral: GreetingScript.handling))
        if parameters.delayWasCapped, let asked = parameters.requestedDelay {
            log(.debug, .init(stringLiteral: GreetingScript.delayCapped), metadata: ["asked": "\(asked)", "max_delay": "\(parameters.delay)"])
        }
        if let err = server.root.err { end(err, cause: server.root.cause) }  // already shutting down
    }

    /// The client went away (the server reported the request aborted): Go's `r.Context()`
    /// is cancelled, and the lines are logged now.
    func clientWentAway(_ reason: ConnectionEnd) {
        server.base.thread.preconditionOnThread()
        log(.debug, .init(stringLiteral: GreetingScript.clientWentAway), metadata: ["reason": "\(reason)"])
        if !ended { outcome = .canceled }
        end(.canceled, cause: nil)
    }

    func serverDropped(_ reason: ConnectionEnd, shuttingDown: Bool) {
        server.base.thread.preconditionOnThread()
        let cause = DropCause(reason: reason, shuttingDown: shuttingDown)
        log(.debug, "Server dropped the connection", metadata: ["reason": "\(cause)"])
        if !ended { outcome = cause.outcome }
        end(.canceled, cause: cause)
    }

    /// The root context is done (the shutdown budget ran out): the server hands its end to each
    /// greeting in flight as it cancels it (a greeting has no context of its own: a child
    /// context would cost an object and an entry in the root's table per pending greeting).
    func contextDone(_ context: Context, error: ContextError) {
        end(error, cause: context.cause)
    }

    /// What Go's handler does when its context is done (client gone, deadline, shutdown): the
    /// error is logged, then `Handled`. The first call counts.
    private func end(_ error: ContextError, cause: (any Error)?) {
        server.base.thread.preconditionOnThread()
        guard !ended else { return }
        ended = true
        log(.notice, .init(stringLiteral: GreetingScript.contextError(error, cause: cause)))
        log(.info, .init(stringLiteral: GreetingScript.handled))
        if outcome == nil { outcome = error == .deadlineExceeded ? .deadlineExceeded : .shutdown }
    }

    /// What the handler's loop does next (``step()``'s answer).
    private enum Step {
        /// A tick was logged: write its event (streams), then step again.
        case ticked
        /// Nothing is due: sleep until ``wakeInstant()``. No payload: `ContinuousClock.Instant`
        /// is resilient (its size is known only at run time), so a `Step` carrying one would
        /// be a dynamically sized value in `run`'s frame, a task allocation of its own per
        /// pending greeting.
        case sleep
        /// The delay is over and `Handled` is logged: answer.
        case answer
        /// The greeting ended otherwise (abort, deadline, shutdown): last words.
        case stop
    }

    /// The handler: the seed's loop. Runs as the request's Task, on the loop.
    ///
    /// Only the awaits are here; the logic is in the synchronous ``step()`` and
    /// ``failed(_:)``: every value an async function keeps goes into its frame, in the Task's
    /// allocator, and a pending greeting keeps its frames for its whole life (each slab the
    /// frames overflow costs 1 KB per pending request). Inlined into the server's handler
    /// closure: one frame for both instead of the closure's and this one's.
    @inline(__always)
    func run(_ request: AsyncRequest, _ response: AsyncResponse) async {
        server.base.thread.preconditionOnThread()
        var stream: ResponseStream?
        do {
            if mode == .events && !ended { stream = try response.startStream(headers: eventHeaders) }
            loop: while true {
                switch step() {
                case .ticked:
                    try await stream?.write(Self.thinkingEvent)
                case .sleep:
                    try await request.executor.sleep(until: wakeInstant())
                case .answer:
                    if let stream {
                        try await stream.write(Self.greetingEvent)
                        try await stream.finish()
                    } else {
                        try respondPlain(response)
                    }
                    return
                case .stop:
                    break loop
                }
            }
        } catch {
            if !failed(error) { return }
        }
        await lastWords(request, response, stream)
    }

    /// One step of the seed's loop: logs the next tick due (by now, and before the deadline),
    /// or ends the greeting at the deadline or the delay, or says how long to sleep.
    @inline(never)
    private func step() -> Step {
        if ended { return .stop }
        let now = ContinuousClock.now
        if schedule.nextTickIsDue(logged: ticksLogged, by: now)
            && deadline.map({ schedule.tickInstant(ticksLogged + 1) < $0 }) ?? true {
            ticksLogged += 1
            server.recorder.ticked()
            log(.info, .init(stringLiteral: GreetingScript.thinking))
            return .ticked
        }
        if let deadline, now >= deadline {
            end(.deadlineExceeded, cause: nil)
            return .stop
        }
        if now >= schedule.finish {
            ended = true
            outcome = .completed
            log(.info, .init(stringLiteral: GreetingScript.handled))
            return .answer
        }
        return .sleep
    }

    /// When the sleep that ``step()`` asked for ends: the next tick, or the deadline if sooner.
    @inline(never)
    private func wakeInstant() -> ContinuousClock.Instant {
        let wake = schedule.nextWake(logged: ticksLogged)
        return deadline.map { min($0, wake) } ?? wake
    }

    /// The plain answer, `200 Hello Gopher!`.
    @inline(never)
    private func respondPlain(_ response: AsyncResponse) throws {
        try response.respond(status: 200, headers: closing(answerHeaders), body: GreetingScript.answer)
    }

    /// The handler's loop threw: whether to say last words.
    /// - the client left (`ResponseError`): no; the server logged it as the request ended;
    /// - cancelled by the abort or the shutdown, whose lines are logged: yes, say why;
    /// - a timer that cannot be set (libevent out of memory), or the executor shut down: log it.
    @inline(never)
    private func failed(_ error: any Error) -> Bool {
        if error is ResponseError { return false }
        if error is CancellationError && ended { return true }
        if !ended {
            ended = true
            outcome = .shutdown
            log(.error, "Cannot go on thinking: \(error)")
        }
        return true
    }

    /// The end of a greeting that did not complete: an `event: error` (or a `503`) with the
    /// reason, unless the client is gone. The runner ends a stream left open.
    private func lastWords(_ request: AsyncRequest, _ response: AsyncResponse, _ stream: ResponseStream?) async {
        let reason: String, body: String
        switch outcome {
        case .deadlineExceeded:
            reason = "\(ContextError.deadlineExceeded)"
            body = GreetingScript.timedOut(after: timeout ?? .zero)
        case .shutdown:
            reason = request.shutdownReason ?? "\(ShutdownCause())"
            body = GreetingScript.shutdownAnswer
        default:
            return  // canceled by the client: nobody to tell
        }
        do {
            if mode == .events {
                let stream = try stream ?? response.startStream(headers: eventHeaders)
                try await stream.write(GreetingScript.errorEvent(reason))
                try await stream.finish()
            } else {
                let retry: [(String, String)] = outcome == .shutdown ? [GreetingScript.retryAfter] : []
                try response.respond(status: 503, headers: closing(answerHeaders + retry), body: body)
            }
        } catch {
            // The client left meanwhile: the server logged it.
        }
    }

    static let thinkingEvent = GreetingScript.thinkingEvent
    static let greetingEvent = GreetingScript.greetingEvent

    /// `X-Delay-Capped` when `?delay=` was capped.
    private var cappedHeaders: [(String, String)] {
        parameters.delayWasCapped ? [(cappedDelayHeader, "\(parameters.delay)")] : []
    }

    /// The plain answer's headers: `Vary: Accept` and ``cappedHeaders``.
    private var answerHeaders: [(String, String)] { [varyAccept] + cappedHeaders }

    /// The stream's headers, fixed when it starts (a header cannot be added mid-stream);
    /// ``eventStreamHeaders`` carry `Vary: Accept` already.
    private var eventHeaders: [(String, String)] {
        closing(eventStreamHeaders + cappedHeaders)
    }

    /// `headers` plus `Connection: close` once the server is stopping (as the timer greeting's
    /// answers). A stream started while serving that ends while stopping cannot say so: the
    /// draining server closes its connection once the stream has ended.
    private func closing(_ headers: [(String, String)]) -> [(String, String)] {
        server.phase == .serving ? headers : headers + [("Connection", "close")]
    }
}

/// The headers of the streaming greeting (and of its `HEAD`), `Vary: Accept` included.
let eventStreamHeaders = [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"), varyAccept]

/// A greeting in the server's in-flight table, from its start until its request ends. The
/// server hands it the root context's end (``ContextObserver/contextDone(_:error:)``) when the
/// shutdown budget runs out.
protocol InFlightGreeting: ContextObserver {
    /// How it ended, once it has.
    var outcome: RequestOutcome? { get }
    /// Its client went away (the request was reported aborted).
    func clientWentAway(_ reason: ConnectionEnd)
    /// The server dropped its connection (a limit, a timeout, a shutdown): not the client's
    /// doing, so it is neither logged nor counted as a client abort.
    func serverDropped(_ reason: ConnectionEnd, shuttingDown: Bool)
}

/// Why the server dropped a greeting's connection, as its context's cause: `Context Error:
/// context canceled (cause: pipeline limit)`.
struct DropCause: Error, CustomStringConvertible {
    let reason: ConnectionEnd
    let shuttingDown: Bool

    var description: String {
        switch reason {
        case .pipelineLimitExceeded: "pipeline limit"
        case .readTimeout: "read timeout"
        case .serverClosed where shuttingDown: "\(ShutdownCause())"
        default: "server closed the connection"
        }
    }

    /// How the greeting counts: `shutdown` when the shutdown closed it, else `dropped`.
    var outcome: RequestOutcome { shuttingDown && reason == .serverClosed ? .shutdown : .dropped }
}
