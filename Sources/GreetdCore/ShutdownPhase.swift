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
