public import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Live counts of the C handles one ``EventBase`` has handed out, readable from any thread.
///
/// These are how tests know that nothing leaked: after every request has ended, `liveEvents` is
/// back to the handful the server itself owns plus one per connection object alive (its read
/// deadline and abort watch, embedded in it, count as one), `liveRequests` is zero, and `liveConnections` is zero once the clients have gone. Writes happen on the loop thread only; reads may come from anywhere,
/// so the fields are relaxed atomics.
public final class LibeventCounters: Sendable {
    /// ``Event`` objects alive (each owns one `struct event`).
    public let liveEvents = Atomic<Int>(0)
    /// ``LoopRequest`` objects alive (each wraps one `struct evhttp_request`).
    public let liveRequests = Atomic<Int>(0)
    /// Open client connections (each an `HTTPConnection` holding the close callback's retain).
    public let liveConnections = Atomic<Int>(0)
    /// Connections refused at `maxConnections` (answered `503` and closed).
    public let rejectedConnections = Atomic<Int>(0)
    /// Connections dropped for sending their request too slowly (header or idle timeout).
    public let timedOutConnections = Atomic<Int>(0)

    /// All counts at zero.
    public init() {}
}

extension Atomic where Value == Int {
    /// Adds `delta` with relaxed ordering: counters, not synchronisation.
    @inline(__always) func bump(_ delta: Int = 1) { add(delta, ordering: .relaxed) }
}
