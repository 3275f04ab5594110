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
    /// Log (once for the service) that draining began.
    case announceDrain
    /// Arm the shutdown budget (`shutdownTimeout`): `budgetSpent` when it runs out.
    case armBudget
    /// Log (once for the service) that greetings are being cancelled.
    case announceCancel
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
            return [.stopAccepting, .announceDrain, .armBudget]
        case (.serving, .cancel):
            phase = .canceling
            return [.stopAccepting, .announceCancel, .cancelGreetings, .armGrace]
        case (.draining, .cancel), (.draining, .budgetSpent):
            phase = .canceling
            return [.announceCancel, .cancelGreetings, .armGrace]
        case (.serving, .stop), (.draining, .stop):
            phase = .stopped
            return [.cancelGreetings, .release]
        case (.draining, .idle), (.canceling, .idle), (.canceling, .graceSpent), (.canceling, .stop):
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
