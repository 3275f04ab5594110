import GoContext
import Libevent
import Logging

/// One greeting request: the seed's handler, on the event loop.
///
/// It logs `Handling greeting request`, then thinks: a persistent (`EV_PERSIST`) timer logs
/// `Greetings are hard. Thinking...` every tick, and after the delay answers `200 Hello Gopher!`.
/// The same timer ends the thinking: its last period is shortened to what is left of the delay
/// (one event per greeting instead of two). Every tick due by the delay is logged before the
/// answer, so the defaults give the seed's five lines.
///
/// Its ``Context`` is a child of the server's root context, with the request's deadline, if any.
/// Whatever ends it first ends the greeting, and its done-callback stops both timers (no tick can
/// follow) and logs Go's words:
/// - the client goes away: the connection's close callback cancels it →
///   `Context Error: context canceled`; access-log status 499;
/// - the deadline passes: `Context Error: context deadline exceeded`; `503`;
/// - the shutdown budget ends: `Context Error: context canceled (cause: server shutting down)`;
///   `503` with `Connection: close`.
/// As in the seed (a `defer`), `Handled greeting request` closes every path.
///
/// Ownership: the ``GreetingServer`` holds each greeting in its in-flight table until it ends;
/// the greeting owns its request, context and timers. Every closure it hands out captures it
/// `unowned`, so ending it (removing it from the table) frees everything at once.
final class Greeting: EventTarget, ContextObserver, AbortObserver {
    private enum State {
        /// `ticker` is the one persistent timer: it fires every tick, and its last period is
        /// shortened so that it also fires when the delay is over (`finishing`).
        case thinking(ticker: Event?, deadline: Event?, finishing: Bool)
        case finished
    }

    let exchange: Exchange
    private let context: Context
    private let delay: GoDuration
    private let timeout: GoDuration?
    private unowned let server: GreetingServer
    private var state: State = .thinking(ticker: nil, deadline: nil, finishing: false)
    private var ticksLogged = 0

    var id: UInt64 { exchange.id }
    private var request: HTTPRequest { exchange.request }

    init(exchange: Exchange, delay: GoDuration, timeout: GoDuration?, server: GreetingServer) {
        self.exchange = exchange
        self.delay = delay
        self.timeout = timeout
        self.server = server
        self.context = Context(parent: server.root, deadline: timeout.map { exchange.start + $0.duration })
        server.stats.liveGreetings.bump()
    }

    deinit {
        if case .thinking = state { assertionFailure("greeting \(exchange.id) freed while thinking") }
        server.stats.liveGreetings.bump(-1)
    }

    private func log(_ level: Logger.Level, _ message: @autoclosure () -> Logger.Message,
                     metadata: @autoclosure () -> Logger.Metadata = [:]) {
        server.log(level, message(), exchange, metadata: metadata())
    }

    /// Ticks that fall due within the delay: they are all logged before the answer.
    private var ticksDue: Int {
        Int(delay.nanoseconds / server.configuration.tick.nanoseconds)
    }

    func start() {
        log(.info, "Handling greeting request")
        context.onDone(observer: self)
        if context.isDone { return }  // the server is already shutting down
        if let timeout, timeout.nanoseconds == 0 {
            context.cancel(.deadlineExceeded)
            return
        }
        if delay.nanoseconds == 0 {
            complete()
            return
        }
        do {
            let base = server.base
            let tick = server.configuration.tick
            // Count the ticks and the deadline from now, not from the start of this loop turn (a
            // burst of new requests can make the loop's cached clock tens of milliseconds old).
            base.updateCachedTime()
            let ticker = try Event(base: base, flags: .persist, target: self, tag: Self.tickTag)
            var deadline: Event?
            if let timeout {
                deadline = try Event(base: base, target: self, tag: Self.deadlineTag)
                try deadline?.add(timeout: timeout.duration)
            }
            let finishing = delay < tick
            state = .thinking(ticker: ticker, deadline: deadline, finishing: finishing)
            try ticker.add(timeout: finishing ? delay.duration : tick.duration)
            try request.watchForAbort(observer: self)
        } catch {
            log(.error, "Cannot start greeting: \(error)")
            state = .finished
            server.respond(exchange, status: 500, body: "internal error: \(error)\n")
            server.greetingFinished(self, outcome: .shutdown)
        }
    }

    private static let tickTag = 0, deadlineTag = 1

    func eventFired(tag: Int, flags: EventFlags) {
        if tag == Self.deadlineTag {
            context.cancel(.deadlineExceeded)
            return
        }
        guard case .thinking(let ticker, let deadline, let finishing) = state, let ticker else { return }
        // Time left until the answer. Re-adding a pending persistent event gives it a new
        // period; the last one is cut short so that the same timer ends the thinking.
        let remaining = exchange.start + delay.duration - .now
        if finishing {
            if remaining > .zero {  // the loop's clock ran behind: not yet
                server.base.updateCachedTime()
                try? ticker.add(timeout: remaining)
            } else {
                complete()
            }
            return
        }
        tick()
        if remaining <= .zero {
            complete()
        } else if remaining < server.configuration.tick.duration {
            state = .thinking(ticker: ticker, deadline: deadline, finishing: true)
            server.base.updateCachedTime()  // count the last period from now
            try? ticker.add(timeout: remaining)
        }
    }

    /// The context is done (client gone, deadline, shutdown).
    func contextDone(_ context: Context, error: ContextError) {
        contextDone(error)
    }

    /// The client went away: cancel, as Go's net/http cancels `r.Context()`.
    func requestAborted(_ request: HTTPRequest, reason: ConnectionEnd) {
        log(.debug, "Client went away", metadata: ["reason": "\(reason)"])
        context.cancel()
    }

    private func tick() {
        guard case .thinking = state else { return }
        ticksLogged += 1
        server.tickLogged()
        log(.info, "Greetings are hard. Thinking...")
    }

    private func complete() {
        guard case .thinking = state else { return }
        while ticksLogged < ticksDue { tick() }
        state = .finished  // frees the timers
        let sent = server.send(exchange, status: 200, body: "Hello Gopher!\n")
        log(.info, "Handled greeting request")
        server.logAccess(exchange, status: sent.status, bytes: sent.bytes)
        server.greetingFinished(self, outcome: .completed)
    }

    private func contextDone(_ err: ContextError) {
        guard case .thinking = state else { return }
        state = .finished  // frees the timers: no tick after this point
        if let cause = context.cause, !(cause is ContextError) {
            log(.notice, "Context Error: \(err) (cause: \(cause))")
        } else {
            log(.notice, "Context Error: \(err)")
        }
        let outcome: RequestOutcome
        let sent: (status: Int, bytes: Int)
        if !request.isPending {
            outcome = .canceled
            sent = (499, 0)
        } else if err == .deadlineExceeded {
            outcome = .deadlineExceeded
            sent = server.send(exchange, status: 503, body: "greeting timed out after \(timeout ?? .zero)\n")
        } else {
            outcome = .shutdown
            // Connection: close is added while the server is stopping.
            sent = server.send(exchange, status: 503, headers: [("Retry-After", "1")], body: "server shutting down\n")
        }
        log(.info, "Handled greeting request")
        server.logAccess(exchange, status: sent.status, bytes: sent.bytes)
        server.greetingFinished(self, outcome: outcome)
    }
}
