import GoContext
import Libevent
import Logging

/// One greeting request: the seed's handler, on the event loop.
///
/// It logs `Handling greeting request`, then thinks: a persistent (`EV_PERSIST`) timer logs
/// `Greetings are hard. Thinking...` every tick, and a one-shot timer ends the thinking after the
/// delay with `200 Hello Gopher!`. Every tick due by the delay is logged before the answer, so the
/// defaults give the seed's five lines.
///
/// If the client goes away first, the connection's close callback cancels the request's
/// ``Context``; its done-callback stops both timers and logs `Context Error: context canceled`.
/// No tick can follow: the timers are freed before that line is written. As in the seed (a
/// `defer`), `Handled greeting request` closes both paths.
///
/// Ownership: the ``GreetingServer`` holds each greeting in its in-flight table until it ends;
/// the greeting owns its request, context and timers. Every closure it hands out captures it
/// `unowned`, so ending it (removing it from the table) frees everything at once.
final class Greeting {
    enum Outcome { case completed, canceled, failed }

    private enum State {
        case thinking(ticker: Event?, finisher: Event?)
        case finished
    }

    let id: UInt64
    private let request: HTTPRequest
    private let context = Context()
    private let delay: GoDuration
    private let logger: Logger
    private unowned let server: GreetingServer
    private var state: State = .thinking(ticker: nil, finisher: nil)
    private var ticksLogged = 0

    init(id: UInt64, request: HTTPRequest, delay: GoDuration, server: GreetingServer, logger: Logger) {
        self.id = id
        self.request = request
        self.delay = delay
        self.server = server
        self.logger = logger
        server.stats.liveGreetings.bump()
    }

    deinit {
        if case .thinking = state { assertionFailure("greeting \(id) freed while thinking") }
        server.stats.liveGreetings.bump(-1)
    }

    /// Ticks that fall due within the delay: they are all logged before the answer.
    private var ticksDue: Int {
        Int(delay.nanoseconds / server.configuration.tick.nanoseconds)
    }

    func start() {
        server.greetingStarted()
        logger.info("Handling greeting request")
        if delay.nanoseconds == 0 {
            complete()
            return
        }
        do {
            let base = server.base
            let ticker = try Event(base: base, flags: .persist) { [unowned self] _ in self.tick() }
            let finisher = try Event(base: base) { [unowned self] _ in self.complete() }
            state = .thinking(ticker: ticker, finisher: finisher)
            try ticker.add(timeout: server.configuration.tick.duration)
            try finisher.add(timeout: delay.duration)
            context.onDone { [unowned self] err in self.contextDone(err) }
            try request.watchForAbort { [unowned self] reason in
                self.logger.debug("Client went away", metadata: ["reason": "\(reason)"])
                self.context.cancel()
            }
        } catch {
            logger.error("Cannot start greeting: \(error)")
            state = .finished
            request.respond(status: 500, headers: [requestIDHeader(id)], body: "internal error: \(error)\n")
            server.greetingFinished(self, outcome: .failed)
        }
    }

    /// Cancels the greeting's context (server shutdown).
    func cancel() {
        context.cancel()
    }

    private func tick() {
        guard case .thinking = state else { return }
        ticksLogged += 1
        server.stats.ticks.bump()
        logger.info("Greetings are hard. Thinking...")
    }

    private func complete() {
        guard case .thinking = state else { return }
        while ticksLogged < ticksDue { tick() }
        state = .finished  // frees both timers
        request.respond(status: 200, headers: [requestIDHeader(id)], body: "Hello Gopher!\n")
        logger.info("Handled greeting request")
        server.greetingFinished(self, outcome: .completed)
    }

    private func contextDone(_ err: ContextError) {
        guard case .thinking = state else { return }
        state = .finished  // frees both timers: no tick after this point
        logger.notice("Context Error: \(err)")
        logger.info("Handled greeting request")
        server.greetingFinished(self, outcome: .canceled)
    }
}
