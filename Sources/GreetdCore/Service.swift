import EventHTTPSystem
import Foundation
import EventHTTPCore
import Logging
import Synchronization

/// What another thread asks of a worker loop, delivered through its ``LoopWakeup``.
///
/// Sendable: the wakeup is Sendable, and the request is an atomic bit set the loop reads after
/// each wake.
final class WorkerControl: Sendable {
    static let drain = 1
    static let cancel = 2
    static let stop = 4

    let wakeup: LoopWakeup
    private let requests = Atomic<Int>(0)

    init() throws(LibeventError) {
        wakeup = try LoopWakeup()
    }

    func request(_ bit: Int) {
        requests.bitwiseOr(bit, ordering: .releasing)
        wakeup.wake()
    }

    /// Takes every pending request (on the loop thread).
    func take() -> Int { requests.exchange(0, ordering: .acquiring) }
}

/// One worker loop seen from outside its thread.
///
/// Sendable: immutable references to Sendable objects.
public final class Worker: Sendable {
    /// The worker's counters.
    public let stats: GreetdStats
    let control: WorkerControl
    private let done: DispatchSemaphore
    private let stopped = Atomic<Bool>(false)

    init(stats: GreetdStats, control: WorkerControl, done: DispatchSemaphore) {
        self.stats = stats
        self.control = control
        self.done = done
    }

    /// Whether its loop has ended.
    public var isStopped: Bool { stopped.load(ordering: .acquiring) }

    func markStopped() {
        stopped.store(true, ordering: .releasing)
        done.signal()
    }

    /// Waits until the loop has ended. Any number of callers, any number of times: the
    /// semaphore is put back after each wait, like a latch.
    func wait() {
        done.wait()
        done.signal()
    }
}

/// greetd: `workers` event loops, one thread each, serving one port.
///
/// Each worker has its own `event_base`, `evhttp` and listeners; with more than one worker the
/// listeners share the port through `SO_REUSEPORT` and the kernel spreads connections across
/// them. Workers share only Sendable things: the metrics registry, the logger and a
/// ``WorkerGroup`` (the process-wide `--max-connections` count, the request numbering, and the
/// tally that logs each shutdown step once for the service). The only way into a worker is its ``LoopWakeup`` (``drain()``, ``cancelRemaining()``).
///
/// Sendable: every stored property is immutable and Sendable.
public final class GreetdService: Sendable {
    /// The bound addresses, with real ports (the same for every worker).
    public let addresses: [IPEndpoint]
    /// The worker loops.
    public let workers: [Worker]
    /// The metrics every worker records into.
    public let metrics: GreetdMetrics

    private init(addresses: [IPEndpoint], workers: [Worker], metrics: GreetdMetrics) {
        self.addresses = addresses
        self.workers = workers
        self.metrics = metrics
    }

    /// The port every address shares.
    public var port: UInt16 { addresses[0].port }

    /// Starts the workers and returns once all listen, or throws why one cannot (after stopping
    /// those already started).
    /// - Parameter onWorkerStopped: called on a worker's thread as its loop ends.
    public static func start(
        configuration: GreetdConfiguration,
        logger: Logger,
        metrics: GreetdMetrics = GreetdMetrics(),
        onWorkerStopped: @escaping @Sendable () -> Void = {}
    ) throws -> GreetdService {
        try configuration.validate()
        if configuration.workers > 1 && configuration.port != 0 {
            // SO_REUSEPORT would let us share the port with another greetd by mistake: check
            // that it is free first, with plain sockets.
            for host in configuration.hosts {
                try LoopHTTPServer.checkPortIsFree(host: host, port: configuration.port)
            }
        }
        let group = WorkerGroup(workers: configuration.workers)
        var workers: [Worker] = []
        var addresses: [IPEndpoint] = []
        do {
            for index in 0..<configuration.workers {
                let port = index == 0 ? configuration.port : addresses[0].port
                let (worker, bound) = try startWorker(index: index, configuration: configuration, port: port,
                                                      logger: logger, metrics: metrics, group: group, onStopped: onWorkerStopped)
                workers.append(worker)
                if index == 0 { addresses = bound }
            }
        } catch {
            for worker in workers { worker.control.request(WorkerControl.stop) }
            for worker in workers { worker.wait() }
            throw error
        }
        return GreetdService(addresses: addresses, workers: workers, metrics: metrics)
    }

    private static func startWorker(
        index: Int, configuration: GreetdConfiguration, port: UInt16, logger: Logger,
        metrics: GreetdMetrics, group: WorkerGroup, onStopped: @escaping @Sendable () -> Void
    ) throws -> (Worker, [IPEndpoint]) {
        let worker = Worker(stats: GreetdStats(), control: try WorkerControl(), done: DispatchSemaphore(value: 0))
        let ready = DispatchSemaphore(value: 0)
        let outcome = Lock<Result<[IPEndpoint], any Error>?>(nil)
        let thread = Thread {
            do {
                try runWorker(configuration: configuration, port: port, logger: logger, metrics: metrics,
                              group: group, worker: worker) { addresses in
                    outcome.withLock { $0 = .success(addresses) }
                    ready.signal()
                }
            } catch {
                let started = outcome.withLock { state -> Bool in
                    guard state == nil else { return true }
                    state = .failure(error)
                    return false
                }
                if started { logger.critical("Worker \(index) stopped: \(error)") } else { ready.signal() }
            }
            worker.markStopped()
            onStopped()
        }
        thread.name = "greetd-worker-\(index)"
        thread.start()
        ready.wait()
        let addresses = try outcome.withLock { $0! }.get()
        return (worker, addresses)
    }

    /// Graceful shutdown: every worker stops accepting and lets greetings finish for up to
    /// `shutdownTimeout`, then cancels the rest. Any thread; idempotent.
    public func drain() {
        for worker in workers { worker.control.request(WorkerControl.drain) }
    }

    /// Cancels every greeting still running now (cause `server shutting down`). Any thread.
    public func cancelRemaining() {
        for worker in workers { worker.control.request(WorkerControl.cancel) }
    }

    /// Whether every worker has stopped.
    public var isStopped: Bool { workers.allSatisfy(\.isStopped) }

    /// Waits until every worker has stopped.
    public func waitUntilStopped() {
        for worker in workers { worker.wait() }
    }

    /// Cancels everything and waits: for tests and embedding.
    public func stop() {
        cancelRemaining()
        waitUntilStopped()
    }
}

/// The descriptor numbers a worker can meet: the connection limit (the kernel gives out the
/// lowest free number, so the numbers in use stay below the count open), plus greetd's own
/// (standard streams, listeners, wake-ups, log files; 64 is ample), within the open-file limit,
/// and at most ``maxReservedDescriptorSlots`` (about 4.5 MB per worker; numbers above it get
/// their slots as they come, as libevent does by default).
func descriptorSlots(_ configuration: GreetdConfiguration) -> Int {
    let wanted = min(configuration.http.maxConnections + 64, maxReservedDescriptorSlots)
    guard let limit = try? ResourceLimits.openFiles() else { return wanted }
    return min(wanted, Int(clamping: limit.rlim_cur))
}

/// The most descriptor slots a worker makes at start.
let maxReservedDescriptorSlots = 65_536

/// One worker's loop, on the calling thread: base, server, control; runs until the server has
/// stopped, then frees everything in reverse order of creation.
private func runWorker(
    configuration: GreetdConfiguration, port: UInt16, logger: Logger, metrics: GreetdMetrics,
    group: WorkerGroup, worker: Worker, onReady: ([IPEndpoint]) -> Void
) throws {
    let control = worker.control
    let base = try EventBase(avoiding: configuration.avoidBackends, counters: worker.stats.libevent)
    // libevent's per-descriptor slots for every number a connection can get, made now, together:
    // made as connections come, they would pin the pages a storm of connections frees (see
    // EventBase.reserveDescriptorSlots). About 50 B per descriptor.
    base.reserveDescriptorSlots(upTo: descriptorSlots(configuration))
    // This thread's log lines go out once per loop pass; the last ones when the worker ends
    // (this defer runs after the one below, which stops the server and may log).
    let logBatch = try LogBatch.install(on: base)
    defer { logBatch?.uninstall() }
    let server = try GreetingServer(configuration: configuration, logger: logger, base: base, metrics: metrics,
                                    stats: worker.stats, group: group, port: port)
    server.onStopped = { [unowned base] in base.exit() }
    let controlEvent = try control.wakeup.makeEvent(on: base) { [unowned server] in
        let requests = control.take()
        if requests & WorkerControl.drain != 0 { server.beginDrain() }
        if requests & WorkerControl.cancel != 0 { server.cancelRemaining() }
        if requests & WorkerControl.stop != 0 { server.forceStop() }
    }
    // Reverse order of creation on the way out: the server (connections, greetings), our event,
    // then the base when it goes out of scope.
    defer {
        withExtendedLifetime(controlEvent) { server.forceStop() }
        server.shutdownExecutor()  // the loop has stopped: the async greetings' last jobs run here
    }
    onReady(server.addresses)
    try base.run()
}
