import Libevent
import Synchronization

/// What the workers of one ``GreetdService`` share: the transport's ``HTTPServerGroup`` (one
/// process-wide `--max-connections` count and one request numbering), and the tally that lets
/// the service log each shutdown step once, with the total in flight, instead of once per worker.
///
/// Sendable: an immutable count, a Sendable group, and a mutex around the tally.
public final class WorkerGroup: Sendable {
    /// Shared by every worker's ``HTTPServer``.
    public let http: HTTPServerGroup
    private let workers: Int
    private let tally = Mutex<[ShutdownPhase: (workers: Int, inFlight: Int)]>([:])

    /// A group for `workers` worker loops.
    public init(workers: Int) {
        self.workers = workers
        self.http = HTTPServerGroup()
    }

    /// A worker reached `phase` (after acting on it) with `inFlight` greetings running.
    /// - Returns: the total in flight across the workers when this is the last of them to reach
    ///   `phase` (the caller logs the line then), else `nil`.
    func workerReached(_ phase: ShutdownPhase, inFlight: Int) -> Int? {
        tally.withLock { tally in
            var entry = tally[phase] ?? (0, 0)
            entry.workers += 1
            entry.inFlight += inFlight
            tally[phase] = entry
            return entry.workers == workers ? entry.inFlight : nil
        }
    }
}
