/// A worker's phase: `serving` → `draining` → `canceling` → `stopped`.
public enum ShutdownPhase: Equatable, Hashable, Sendable {
    /// Accepting connections and starting greetings.
    case serving
    /// Listeners closed; greetings in flight may finish within the shutdown budget.
    case draining
    /// The budget is spent (or a second signal came): greetings in flight are cancelled and
    /// answer `503`; the worker waits for their connections, at most the grace period.
    case canceling
    /// Everything is freed.
    case stopped
}

/// What moves a worker toward stopping.
enum ShutdownEvent: Equatable {
    /// Stop accepting and let greetings finish (first `SIGTERM`).
    case drain
    /// Cancel greetings in flight now (second signal).
    case cancel
    /// The shutdown budget ran out while draining.
    case budgetSpent
    /// The grace period after cancelling ran out.
    case graceSpent
    /// Free everything now, whatever the phase.
    case stop
    /// No greeting and no connection is left.
    case idle
}

/// What a transition asks the worker to do, in order.
enum ShutdownAction: Equatable {
    /// Close the listeners and the idle connections, then each connection as it turns idle.
    case stopAccepting
    /// This worker entered `phase` and did its work: it counts toward the line the service logs
    /// once every worker is past `phase` (`Draining: stopped accepting connections`,
    /// `Cancelling greetings in flight`).
    case announce(ShutdownPhase)
    /// This worker went past `phase` without entering it (it stopped first): it counts toward
    /// the service's line, which it does not cause.
    case pass(ShutdownPhase)
    /// Arm the shutdown budget (`shutdownTimeout`): `budgetSpent` when it runs out.
    case armBudget
    /// Cancel the root context with ``ShutdownCause``: every greeting answers `503`.
    case cancelGreetings
    /// Arm the grace period (`shutdownGrace`): `graceSpent` when it runs out.
    case armGrace
    /// Free the HTTP server (listeners, connections) and every timer; the worker has stopped.
    case release
}

/// The worker's shutdown as one transition function over (phase, event).
///
/// Every pair is listed in ``handle(_:)``: a legal one moves the phase and returns the actions;
/// repeated requests and anything after `stopped` return none; a pair that cannot happen (a
/// budget timer firing while serving) goes to ``badTransition(_:)``.
///
/// Threading: a value owned by its ``GreetingServer``, used on the worker's loop thread.
struct ShutdownCoordinator {
    private(set) var phase: ShutdownPhase = .serving

    /// Applies `event`; returns what the worker must do.
    mutating func handle(_ event: ShutdownEvent) -> [ShutdownAction] {
        switch (phase, event) {
        case (.serving, .drain):
            phase = .draining
            return [.stopAccepting, .announce(.draining), .armBudget]
        case (.serving, .cancel):
            phase = .canceling
            return [.stopAccepting, .announce(.draining), .announce(.canceling), .cancelGreetings, .armGrace]
        case (.draining, .cancel), (.draining, .budgetSpent):
            phase = .canceling
            return [.announce(.canceling), .cancelGreetings, .armGrace]
        case (.serving, .stop):
            phase = .stopped
            return [.pass(.draining), .pass(.canceling), .cancelGreetings, .release]
        case (.draining, .stop):
            phase = .stopped
            return [.pass(.canceling), .cancelGreetings, .release]
        case (.draining, .idle):
            phase = .stopped
            return [.pass(.canceling), .release]
        case (.canceling, .idle), (.canceling, .graceSpent), (.canceling, .stop):
            phase = .stopped
            return [.release]
        case (.serving, .idle), (.draining, .drain), (.canceling, .drain), (.canceling, .cancel), (.stopped, _):
            // Idle while serving is the normal state; the rest are repeated requests.
            return []
        case (.serving, .budgetSpent), (.serving, .graceSpent), (.draining, .graceSpent), (.canceling, .budgetSpent):
            return badTransition(event)
        }
    }

    /// The one place an impossible pair goes: loud in debug builds, ignored in release.
    private func badTransition(_ event: ShutdownEvent) -> [ShutdownAction] {
        assertionFailure("shutdown: \(event) cannot happen while \(phase)")
        return []
    }
}
