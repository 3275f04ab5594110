import EventHTTPContext

/// The seed's greeting, described once: what it logs, what it answers and how each ending is
/// counted. The timer greeting (``Greeting``) and the async and streaming ones (`AsyncGreeting`)
/// both speak from here, so the three can only differ in how they wait.
enum GreetingScript {
    /// Logged as the greeting starts (the seed's first line).
    static let handling = "Handling greeting request"
    /// Logged at each tick while thinking (the seed's line, once a second by default).
    static let thinking = "Greetings are hard. Thinking..."
    /// Logged as every greeting ends, whatever ended it (the seed's `defer`).
    static let handled = "Handled greeting request"
    /// Logged (debug) when the transport reports the client gone.
    static let clientWentAway = "Client went away"
    /// Logged (debug) when `?delay=` was above `--max-delay`.
    static let delayCapped = "Delay capped at --max-delay"
    /// The answer of a greeting that completed.
    static let answer = "Hello Gopher!\n"
    /// The answer of a greeting the shutdown cancelled (`503`, with ``retryAfter``).
    static let shutdownAnswer = "server shutting down\n"
    /// Sent with ``shutdownAnswer``: try again (elsewhere) in a second.
    static let retryAfter = ("Retry-After", "1")
    /// The stream's event for a tick.
    static let thinkingEvent = "event: thinking\ndata: \(thinking)\n\n"
    /// The stream's event for the answer.
    static let greetingEvent = "event: greeting\ndata: Hello Gopher!\n\n"

    /// The line Go's handler logs when its context is done: `Context Error: context canceled`,
    /// with the cause when there is one that is not the error itself.
    static func contextError(_ error: ContextError, cause: (any Error)?) -> String {
        if let cause, !(cause is ContextError) { return "Context Error: \(error) (cause: \(cause))" }
        return "Context Error: \(error)"
    }

    /// The answer of a greeting whose `?timeout=` passed first (`503`).
    static func timedOut(after timeout: some CustomStringConvertible) -> String {
        "greeting timed out after \(timeout)\n"
    }

    /// The stream's last event when the greeting did not complete.
    static func errorEvent(_ reason: String) -> String {
        "event: error\ndata: \(reason)\n\n"
    }
}

