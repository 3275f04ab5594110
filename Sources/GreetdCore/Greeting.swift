import EventHTTPContext
import EventHTTPCore
import Logging

/// One greeting request: the seed's handler, on the event loop.
///
/// It logs `Handling greeting request`, then thinks: it logs `Greetings are hard. Thinking...`
/// at each tick (`start + n × tick`, never before), and at `start + delay` answers `200 Hello
/// Gopher!` (``ThinkingSchedule``: the rule the async greetings share). One ``LoopTimer``
/// (a `struct event` kept in the greeting: one allocation, no timer object) does both: it is
/// set for whichever comes next. Every tick due by the delay is logged before
/// the answer, so the defaults give the seed's five lines.
///
/// It behaves as Go's handler with a ``Context`` that is a child of the server's root context, with
/// the request's deadline, if any (a second timer, set for `start + timeout`), but it allocates
/// no context of its own: the server hands it the root's end as it cancels the root (every
/// greeting thinking is in its in-flight table), and it keeps its own ``ContextError`` and cause, once done. Whatever ends it
/// first ends the greeting, stops both timers (no tick can follow) and logs Go's words:
/// - the client goes away (the server reports the request aborted) → `Context Error: context
///   canceled`; access-log status 499;
/// - the deadline passes: `Context Error: context deadline exceeded`; `503`;
/// - the shutdown budget ends: `Context Error: context canceled (cause: server shutting down)`;
///   `503` with `Connection: close`.
/// As in the seed (a `defer`), `Handled greeting request` closes every path.
///
/// **The stream** (``GreetingKind/events``): the same greeting, its thoughts also sent as
/// server-sent events on the same timer: `200`, `text/event-stream` as it starts, an `event:
/// thinking` with each tick's line, then `event: greeting` (or `event: error` with the
/// context's words for a deadline or a shutdown), then the stream's end. The client's abort
/// is seen by the same close callback; nothing more is written.
///
/// Ownership: the ``GreetingServer`` holds each greeting in its in-flight table until its
/// request ends; the greeting owns its request and timers, and the timers hold it unowned, so
/// ending it (removing it from the table) frees everything at once.
final class Greeting: EventTarget, ContextObserver, InFlightGreeting {

    let request: LoopRequest
    private let parameters: GreetingQuery
    private unowned let server: GreetingServer
    /// Whether the answer is the event stream (``GreetingKind/events``).
    private let streams: Bool
    /// Until the greeting ends (``finish()``), whatever ended it first.
    private var thinking = true
    /// The tick-and-answer timer, while thinking.
    private var ticker: LoopTimer?
    /// The `?timeout=` timer, while thinking with a deadline.
    private var deadline: LoopTimer?
    private var ticksLogged = 0
    /// The server's log level (fixed for its life): a line below it costs one comparison.
    private let logLevel: Logger.Level
    /// How the greeting ended, once it has.
    private(set) var outcome: RequestOutcome?

    init(request: LoopRequest, parameters: GreetingQuery, server: GreetingServer, streams: Bool = false) {
        self.request = request
        self.parameters = parameters
        self.server = server
        self.streams = streams
        self.logLevel = server.recorder.logLevel
        server.stats.liveGreetings.bump()
    }

    deinit {
        if thinking { assertionFailure("greeting \(request.id) freed while thinking") }
        server.stats.liveGreetings.bump(-1)
    }

    private var started: ContinuousClock.Instant { request.head.start }
    /// When it ticks and answers: the rule every greeting shares.
    private var schedule: ThinkingSchedule {
        ThinkingSchedule(start: started, delay: parameters.delay, tick: server.configuration.tick)
    }
    /// The next instant the ticker must fire at: the next tick, or the answer.
    private var nextWake: ContinuousClock.Instant { schedule.nextWake(logged: ticksLogged) }

    private func log(_ level: Logger.Level, _ message: @autoclosure () -> Logger.Message,
                     metadata: @autoclosure () -> Logger.Metadata = [:]) {
        guard logLevel <= level else { return }  // before touching the server: most lines are off
        server.recorder.log(level, request: request.id, message(), metadata: metadata())
    }

    func start() {
        log(.info, .init(stringLiteral: GreetingScript.handling))
        if parameters.delayWasCapped, let asked = parameters.requestedDelay {
            log(.debug, .init(stringLiteral: GreetingScript.delayCapped), metadata: ["asked": "\(asked)", "max_delay": "\(parameters.delay)"])
        }
        if let err = server.root.err {  // the server is already shutting down
            contextDone(err, cause: server.root.cause)
            return
        }
        if let timeout = parameters.timeout, timeout.nanoseconds == 0 {
            contextDone(.deadlineExceeded, cause: nil)
            return
        }
        if parameters.delay.nanoseconds == 0 {
            complete()  // at once: nothing can cancel it before it answers
            return
        }
        if streams && !openStream() {
            fail("Cannot start the stream", nil)
            return
        }
        do {
            if let timeout = parameters.timeout {
                deadline = try LoopTimer(base: server.base, target: self, tag: Self.deadlineTag)
                try deadline?.schedule(at: started + timeout.duration)
            }
            ticker = try LoopTimer(base: server.base, target: self, tag: Self.tickTag)
            try ticker?.schedule(at: nextWake)
            if !streams { try request.watchForAbort() }  // a stream's start armed the watch
        } catch {
            fail("Cannot start greeting", error)
        }
    }

    /// A timer could not be set (libevent out of memory): without it the greeting would think
    /// forever, so it ends now with `500`, logged as an error.
    /// A stream that cannot start (its abort watch cannot be armed) says so with `error` nil.
    private func fail(_ what: String, _ error: (any Error)?) {
        let words = error.map { "\($0)" } ?? "out of memory"
        log(.error, "\(what): \(words)")
        finish()  // frees the timers
        outcome = .shutdown
        if request.isStreaming {
            endStream(GreetingScript.errorEvent("internal error: \(words)"))
        } else {
            server.send(request, status: 500, body: "internal error: \(words)\n")
        }
    }

    private static let tickTag = 0, deadlineTag = 1

    func eventFired(tag: Int, flags: EventFlags) {
        if tag == Self.deadlineTag {
            contextDone(.deadlineExceeded, cause: nil)
            return
        }
        guard thinking, ticker != nil else { return }
        let now = ContinuousClock.now
        let schedule = self.schedule
        while schedule.nextTickIsDue(logged: ticksLogged, by: now) { logTick() }
        if now >= schedule.finish {
            complete()
        } else {
            do {
                try ticker?.schedule(at: nextWake)
            } catch {
                // Unscheduled, the greeting would never answer (and, with no deadline, never end).
                fail("Cannot schedule the next tick", error)
            }
        }
    }

    /// The root context is done (the shutdown budget ran out): Go's child context would be done
    /// with the root's error and cause. The server calls this for each greeting in its in-flight
    /// table as it cancels the root (a greeting does not register with the root: a registration
    /// would cost a dictionary entry per pending greeting).
    func contextDone(_ context: Context, error: ContextError) {
        contextDone(error, cause: context.cause)
    }

    /// The client went away (the server reported the request aborted): cancel, as Go's
    /// net/http cancels `r.Context()`.
    func clientWentAway(_ reason: ConnectionEnd) {
        log(.debug, .init(stringLiteral: GreetingScript.clientWentAway), metadata: ["reason": "\(reason)"])
        contextDone(.canceled, cause: nil)
    }

    /// The server dropped the connection (the pipeline limit, a read timeout, the shutdown):
    /// the context is cancelled with that cause, and the greeting counts as `dropped` (or
    /// `shutdown`), never as the client's `canceled`.
    func serverDropped(_ reason: ConnectionEnd, shuttingDown: Bool) {
        let cause = DropCause(reason: reason, shuttingDown: shuttingDown)
        log(.debug, "Server dropped the connection", metadata: ["reason": "\(cause)"])
        guard thinking else { return }
        contextDone(.canceled, cause: cause)
        outcome = cause.outcome
    }

    private func logTick() {
        ticksLogged += 1
        server.recorder.ticked()
        log(.info, .init(stringLiteral: GreetingScript.thinking))
        if streams { request.writeChunk(GreetingScript.thinkingEvent) }
    }

    /// Headers every answer of this greeting carries: `Vary: Accept` (the same URL streams for
    /// `Accept: text/event-stream`), and `X-Delay-Capped` when `?delay=` was capped.
    private var headers: [(String, String)] {
        !parameters.delayWasCapped ? [varyAccept] : [varyAccept, (cappedDelayHeader, "\(parameters.delay)")]
    }

    private func complete() {
        guard thinking else { return }
        if streams && !openStream() {  // `?delay=0s`: the stream starts as it ends
            fail("Cannot start the stream", nil)
            return
        }
        while ticksLogged < schedule.ticksDue { logTick() }
        finish()  // frees the timers
        outcome = .completed
        log(.info, .init(stringLiteral: GreetingScript.handled))
        if streams {
            endStream(GreetingScript.greetingEvent)
        } else {
            server.send(request, status: 200, headers: headers, body: GreetingScript.answer)
        }
    }

    /// Starts the event stream (once): `200` with the stream's headers, plus `Connection:
    /// close` once the server is stopping. Whether it is under way.
    private func openStream() -> Bool {
        if request.isStreaming { return true }
        var headers = eventStreamHeaders
        if parameters.delayWasCapped { headers.append((cappedDelayHeader, "\(parameters.delay)")) }
        if server.phase != .serving { headers.append(("Connection", "close")) }
        return request.startStream(status: 200, headers: headers)
    }

    /// Writes the stream's last event and ends it (starting it first if it had not started).
    private func endStream(_ lastEvent: String) {
        guard openStream() else { return }
        request.writeChunk(lastEvent)
        request.endStream()
    }

    /// Stops thinking: frees the timers.
    private func finish() {
        thinking = false
        ticker = nil
        deadline = nil
    }

    /// What Go's handler does when its context is done with `err` (and `cause`, as
    /// `context.Cause` reports it when it is not `err` itself): the first call counts.
    private func contextDone(_ err: ContextError, cause: (any Error)?) {
        guard thinking else { return }
        finish()  // frees the timers: no tick after this point
        log(.notice, .init(stringLiteral: GreetingScript.contextError(err, cause: cause)))
        log(.info, .init(stringLiteral: GreetingScript.handled))
        if !request.isPending && !request.isStreaming {
            outcome = .canceled
        } else if err == .deadlineExceeded {
            outcome = .deadlineExceeded
            if streams {
                endStream(GreetingScript.errorEvent("\(ContextError.deadlineExceeded)"))
            } else {
                server.send(request, status: 503, headers: headers, body: GreetingScript.timedOut(after: parameters.timeout ?? .zero))
            }
        } else {
            outcome = .shutdown
            if streams {
                endStream(GreetingScript.errorEvent("\(ShutdownCause())"))
            } else {
                // Connection: close is added while the server is stopping.
                server.send(request, status: 503, headers: headers + [GreetingScript.retryAfter], body: GreetingScript.shutdownAnswer)
            }
        }
    }
}

/// `Vary: Accept` on every greeting answer: `GET /` is plain text or an event stream depending
/// on `Accept`, so a cache must not hand one client's answer to another that asked otherwise.
public let varyAccept = ("Vary", "Accept")

/// The response header that says `?delay=` was above `--max-delay`; its value is the delay used.
public let cappedDelayHeader = "X-Delay-Capped"
