import Foundation
import Libevent
import Logging
import Synchronization

/// Requests from other threads to a running server: the ``LoopWakeup`` plus the flag it carries.
///
/// Sendable: the wakeup is Sendable, and the flag is an atomic the loop reads after each wake.
public final class ServerControl: Sendable {
    let wakeup: LoopWakeup
    private let stopRequested = Atomic<Bool>(false)

    public init() throws(LibeventError) {
        wakeup = try LoopWakeup()
    }

    /// Asks the loop to shut the server down and return. Any thread; idempotent.
    public func requestStop() {
        stopRequested.store(true, ordering: .releasing)
        wakeup.wake()
    }

    var isStopRequested: Bool { stopRequested.load(ordering: .acquiring) }
}

/// Runs greetd on the calling thread: creates the base and the server, arms the control, reports
/// the bound addresses, runs the loop, and tears everything down in reverse order of creation
/// before it returns.
///
/// With `ownsProcess` (the daemon), it also handles `SIGINT`/`SIGTERM` and, on the `select`
/// backend, lowers the open-file soft limit to `FD_SETSIZE`: Debian's libevent is built with
/// `_FORTIFY_SOURCE`, whose `FD_SET` aborts the process for a descriptor of 1024 or more, so
/// `accept` must fail with `EMFILE` before such a descriptor exists.
public func runGreetd(
    configuration: GreetdConfiguration,
    logger: Logger,
    control: ServerControl,
    ownsProcess: Bool,
    onReady: ([SocketAddress], GreetdStats) -> Void
) throws {
    let base = try EventBase(avoiding: configuration.avoidBackends)
    let server = try GreetingServer(configuration: configuration, logger: logger, base: base)
    var signalEvents: [Event] = []
    defer {
        // Reverse order of creation: the server's connections and greetings, then our events,
        // then (when `base` goes out of scope) the event_base.
        server.shutdown()
        signalEvents.removeAll()
    }
    let stop = { [unowned server, unowned base] (why: String) in
        logger.notice("Shutting down", metadata: ["reason": "\(why)"])
        server.shutdown()
        base.exit()
    }
    let controlEvent = try control.wakeup.makeEvent(on: base) {
        if control.isStopRequested { stop("stop requested") }
    }
    signalEvents.append(controlEvent)
    if ownsProcess, base.method == "select" {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        let cap = rlim_t(FD_SETSIZE)
        if limit.rlim_cur > cap {
            limit.rlim_cur = cap
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
            logger.warning("select backend: open files limited to \(cap) (FD_SETSIZE); use epoll or poll for more connections")
        }
    }
    if ownsProcess {
        // A supervisor (or a parent spawning from a libdispatch thread) may hand us these
        // signals blocked; libevent's handler would then never run.
        var unblock = sigset_t()
        sigemptyset(&unblock)
        sigaddset(&unblock, SIGINT)
        sigaddset(&unblock, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
        for (number, name) in [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM")] {
            let event = try Event(base: base, fd: number, flags: [.signal, .persist]) { _ in stop("received \(name)") }
            try event.add()
            signalEvents.append(event)
        }
    }
    logger.info("Event backend: \(base.method)", metadata: ["early_close": "\(base.supportsEarlyClose)"])
    for address in server.addresses {
        logger.info("Server listening on http://\(address)")
    }
    onReady(server.addresses, server.stats)
    try base.run()
}

/// A greetd server on a thread of its own, for tests and embedding.
///
/// Sendable: every stored property is immutable and Sendable; the server itself never leaves its
/// loop thread, and ``stop()`` reaches it only through ``ServerControl``.
public final class RunningServer: Sendable {
    /// The bound addresses, with real ports.
    public let addresses: [SocketAddress]
    /// The server's counters.
    public let stats: GreetdStats
    private let control: ServerControl
    private let finished: DispatchSemaphore
    private let loopError: ErrorBox

    private init(addresses: [SocketAddress], stats: GreetdStats, control: ServerControl, finished: DispatchSemaphore, loopError: ErrorBox) {
        self.addresses = addresses
        self.stats = stats
        self.control = control
        self.finished = finished
        self.loopError = loopError
    }

    /// The port every address shares.
    public var port: UInt16 { addresses[0].port }

    /// Starts a server and returns once it listens, or throws why it cannot.
    public static func start(configuration: GreetdConfiguration, logger: Logger) throws -> RunningServer {
        let control = try ServerControl()
        let ready = DispatchSemaphore(value: 0)
        let finished = DispatchSemaphore(value: 0)
        let outcome = Mutex<Result<([SocketAddress], GreetdStats), any Error>?>(nil)
        let loopError = ErrorBox()
        let thread = Thread {
            do {
                try runGreetd(configuration: configuration, logger: logger, control: control, ownsProcess: false) { addresses, stats in
                    outcome.withLock { $0 = .success((addresses, stats)) }
                    ready.signal()
                }
            } catch {
                let reported = outcome.withLock { state -> Bool in
                    if state == nil { state = .failure(error); return false }
                    return true
                }
                if reported { loopError.value.withLock { $0 = error } } else { ready.signal() }
            }
            finished.signal()
        }
        thread.name = "greetd-loop"
        thread.start()
        ready.wait()
        let (addresses, stats) = try outcome.withLock { $0! }.get()
        return RunningServer(addresses: addresses, stats: stats, control: control, finished: finished, loopError: loopError)
    }

    /// Shuts the server down (greetings in flight are cancelled) and waits for its thread to end.
    /// Call it once.
    public func stop() throws {
        control.requestStop()
        finished.wait()
        if let error = loopError.value.withLock({ $0 }) { throw error }
    }
}

/// An error handed from the loop thread to the thread that stops it.
final class ErrorBox: Sendable {
    let value = Mutex<(any Error)?>(nil)
}
