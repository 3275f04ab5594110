import EventHTTPCore
import Testing

// Helpers for tests that run an `EventBase` on the test's own thread. Every test using them is
// synchronous on purpose: a base and everything made from it are confined to the thread that
// created the base, and a synchronous test body never changes thread.

/// Creates a base on the calling thread, runs `body` with it, then checks that `body` released
/// every event (the base's `deinit` asserts it) before the base goes away.
/// - Parameter methods: backends the base must not use (`["epoll", "poll"]` forces `select`).
public func withBase(
    avoiding methods: [String] = [],
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: (EventBase) throws -> Void
) throws {
    let base = try EventBase(avoiding: methods)
    try withExtendedLifetime(base) {
        try body(base)
    }
    #expect(base.counters.liveEvents.load(ordering: .relaxed) == 0, "events left alive", sourceLocation: sourceLocation)
}

/// A one-shot timer that stops the loop after `limit`, so a broken test fails instead of hanging.
///
/// Loop-confined like the base it runs on; release it (with everything else) before the base.
public final class Watchdog {
    /// Whether the limit passed and the watchdog stopped the loop.
    public private(set) var expired = false
    private var event: Event?

    /// Arms the watchdog on `base`; it stops the loop once, `limit` from now.
    public init(_ base: EventBase, after limit: Duration = .seconds(2)) throws {
        event = try Event(base: base) { [unowned self, unowned base] _ in
            self.expired = true
            base.exit()
        }
        try event?.add(timeout: limit)
    }
}
