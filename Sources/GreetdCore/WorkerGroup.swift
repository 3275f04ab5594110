import EventHTTPSystem
import EventHTTPCore
import Synchronization

/// What the workers of one ``GreetdService`` share: the transport's ``HTTPServerGroup`` (one
/// process-wide `--max-connections` count and one request numbering), and the tally that lets
/// the service log each shutdown step once, with the total in flight, instead of once per worker.
///
/// Sendable: an immutable count, a Sendable group, and a mutex around the tally.
public final class WorkerGroup: Sendable {
    /// Shared by every worker's ``LoopHTTPServer``.
    public let http: HTTPServerGroup
    private let workers: Int
    private let tally = Lock<[ShutdownPhase: (workers: Int, acted: Bool, inFlight: Int)]>([:])

    /// A group for `workers` worker loops.
    public init(workers: Int) {
        self.workers = workers
        self.http = HTTPServerGroup()
    }

    /// A worker went past `phase`: it entered it and `acted` (with `inFlight` greetings running),
    /// or it stopped before it.
    /// - Returns: the total in flight across the workers when this is the last of them to pass
    ///   `phase` and at least one acted (the caller logs the line then), else `nil`.
    func workerPassed(_ phase: ShutdownPhase, acted: Bool, inFlight: Int) -> Int? {
        tally.withLock { tally in
            var entry = tally[phase] ?? (0, false, 0)
            entry.workers += 1
            entry.acted = entry.acted || acted
            entry.inFlight += inFlight
            tally[phase] = entry
            return entry.workers == workers && entry.acted ? entry.inFlight : nil
        }
    }
}
