import EventHTTPCore
import Synchronization

/// Counters of one worker, readable from any thread (tests and leak checks; `/metrics` reads
/// ``GreetdMetrics``, which the same `RequestRecorder` writes).
///
/// Written only on the server's loop thread; read anywhere. Relaxed atomics: each number is
/// exact on its own, but two numbers read one after the other are not a consistent snapshot.
public final class GreetdStats: Sendable {
    /// Greetings started (`Handling greeting request`).
    public let started = Atomic<Int>(0)
    /// Greetings answered `200 Hello Gopher!`.
    public let completed = Atomic<Int>(0)
    /// Greetings whose context was cancelled because the client went away.
    public let canceled = Atomic<Int>(0)
    /// Greetings that hit their deadline (`503`).
    public let deadlineExceeded = Atomic<Int>(0)
    /// Greetings cancelled by shutdown (`503`, `Connection: close`).
    public let shutdown = Atomic<Int>(0)
    /// Greetings thinking right now.
    public let inFlight = Atomic<Int>(0)
    /// `Greetings are hard. Thinking...` lines logged.
    public let ticks = Atomic<Int>(0)
    /// Live greeting objects: equal to ``inFlight`` unless something leaked.
    public let liveGreetings = Atomic<Int>(0)
    /// The libevent handles behind it all.
    public let libevent: LibeventCounters

    public init(libevent: LibeventCounters = LibeventCounters()) {
        self.libevent = libevent
    }
}

extension Atomic where Value == Int {
    /// Adds `delta` with relaxed ordering: counters, not synchronisation.
    @inline(__always) func bump(_ delta: Int = 1) { add(delta, ordering: .relaxed) }
}
