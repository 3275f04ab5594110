#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Libevent
import Synchronization
import Testing

// Every test here is synchronous on purpose: an `EventBase` and everything made from it are
// confined to the thread that created the base, and a synchronous test body never changes thread.

/// Creates a base on the calling thread, runs `body` with it, then checks that `body` released
/// every event (the base's `deinit` asserts it) before the base goes away.
func withBase(
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
/// Release it (with everything else) before the base.
final class Watchdog {
    private(set) var expired = false
    private var event: Event?

    init(_ base: EventBase, after limit: Duration = .seconds(2)) throws {
        event = try Event(base: base) { [unowned self, unowned base] _ in
            self.expired = true
            base.exit()
        }
        try event?.add(timeout: limit)
    }
}

/// A connected `AF_UNIX` stream socket pair; both ends still open are closed in `deinit`.
final class SocketPair {
    private(set) var fds: [Int32] = [-1, -1]

    init() throws {
        #if canImport(Glibc)
        let type = Int32(SOCK_STREAM.rawValue)
        #else
        let type = SOCK_STREAM
        #endif
        let result = socketpair(AF_UNIX, type, 0, &fds)
        try #require(result == 0, "socketpair failed: errno \(errno)")
    }

    var left: Int32 { fds[0] }
    var right: Int32 { fds[1] }

    /// Closes one end (index 0 or 1) now.
    func closeEnd(_ index: Int) {
        if fds[index] >= 0 {
            _ = close(fds[index])
            fds[index] = -1
        }
    }

    deinit {
        closeEnd(0)
        closeEnd(1)
    }
}

/// A value shared with other threads (a `Mutex` cannot be captured by an escaping closure).
final class Shared<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    var value: Value { mutex.withLock { $0 } }
    func set(_ value: Value) { mutex.withLock { $0 = value } }
    func update(_ body: (inout Value) -> Void) { mutex.withLock { body(&$0) } }
}
