import Foundation
import GreetdCore
import EventHTTPSystem
import EventHTTPCore
import Logging

/// The main thread of the daemon: starts the workers, tells systemd, turns signals into drain and
/// cancel requests, and returns once every worker has stopped.
///
/// The main thread runs a small libevent loop of its own for `SIGINT`/`SIGTERM`, `SIGHUP` and
/// the workers' "stopped" wakeups; it never touches a worker's loop.
struct Supervisor {
    let configuration: GreetdConfiguration
    let logger: Logger
    /// `--access-log`, reopened on `SIGHUP`.
    var accessLog: AccessLog? = nil

    func run() throws {
        // SIGHUP's default action kills the process (exit 129): an nginx habit (`kill -HUP`) or
        // a closed ssh terminal must not stop greetd, not even before its handler is in place.
        _ = signal(SIGHUP, SIG_IGN)
        // A supervisor (or a parent spawning from a libdispatch thread) may hand us these
        // signals blocked; libevent's handler would then never run.
        try ProcessSignals.unblockOnThisThread([SIGINT, SIGTERM, SIGHUP])

        let base = try EventBase(avoiding: configuration.avoidBackends)
        if base.method == "select" {
            if OpenFileLimit.capForSelect() {
                logger.warning("select backend: open files limited to \(FD_SETSIZE) (FD_SETSIZE); use epoll or poll for more connections")
            }
        } else {
            OpenFileLimit.raiseToHardLimit()
        }
        // Every connection is a descriptor: past the soft limit (now raised as far as it goes),
        // accept fails with EMFILE long before --max-connections is reached.
        if let limit = try? ResourceLimits.openFiles(), UInt64(configuration.http.maxConnections) > UInt64(limit.rlim_cur) {
            logger.warning("--max-connections \(configuration.http.maxConnections) exceeds the open-file limit \(limit.rlim_cur) (RLIMIT_NOFILE soft limit, after raising it to the hard limit): connections past it fail to be accepted")
        }
        let notifier = SystemdNotifier(environment: ProcessInfo.processInfo.environment)
        let workersStopped = try LoopWakeup()

        // The signal events go in before any worker listens: a client (or a supervisor) may
        // send SIGTERM as soon as a request is answered, and the default action would kill
        // greetd outright. libevent's handler records a signal that arrives before this loop
        // runs and delivers it once the loop runs, by which time `service` is set.
        var service: GreetdService?
        var signalsSeen = 0
        let onSignal = { (name: String) in
            guard let service else { return }
            signalsSeen += 1
            if signalsSeen == 1 {
                logger.notice("Received \(name): draining", metadata: ["budget": "\(configuration.shutdownTimeout)"])
                notifier?.send("STOPPING=1\nSTATUS=Draining")
                service.drain()
            } else {
                logger.notice("Received \(name) again: cancelling greetings in flight")
                service.cancelRemaining()
            }
        }
        var events: [Event] = []
        for (number, name) in [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM")] {
            let event = try Event(base: base, fd: number, flags: [.signal, .persist]) { _ in onSignal(name) }
            try event.add()
            events.append(event)
        }
        let hangUp = try Event(base: base, fd: SIGHUP, flags: [.signal, .persist]) { _ in reopenLogs() }
        try hangUp.add()
        events.append(hangUp)

        let started = try GreetdService.start(configuration: configuration, logger: logger) {
            workersStopped.wake()
        }
        service = started
        events.append(try workersStopped.makeEvent(on: base) { [unowned base] in
            if started.isStopped { base.exit() }
        })
        // Say we are up only once the signal handlers are in place: a supervisor that reacts to
        // READY=1 (or a test that reacts to the log line) with SIGTERM must not kill us outright.
        // Lifecycle lines: at notice, so that `--log-level notice` (the unit's and the
        // container examples' level) still says where greetd listens and that it is ready.
        logger.notice("Event backend: \(describeBackend(base.method, reportsHangUp: base.supportsEarlyClose))",
                      metadata: ["workers": "\(configuration.workers)", "workers_from": "\(configuration.workersFrom)"])
        for address in started.addresses {
            logger.notice("Server listening on http://\(address)")
        }
        notifier?.send("READY=1\nSTATUS=Listening on \(started.addresses.map(\.description).joined(separator: " "))\nMAINPID=\(getpid())")
        logger.notice("Ready: \(configuration.workers) \(configuration.workers == 1 ? "worker" : "workers") serving\(notifier == nil ? "" : " (READY=1 sent to systemd)")")

        if !started.isStopped { try base.run() }
        events.removeAll()
        started.waitUntilStopped()
        logger.notice("Stopped")
    }
}

extension Supervisor {
    /// `SIGHUP`: reopens the access log file (logrotate has moved it) and says so at `notice`.
    /// Standard error cannot be reopened; greetd goes on serving either way.
    func reopenLogs() {
        guard let accessLog, case .file(let path) = accessLog.destination else {
            logger.notice("SIGHUP: no log file to reopen (access log: \(accessLog?.destination.description ?? "stderr")); still serving")
            return
        }
        do {
            try accessLog.reopen()
            logger.notice("SIGHUP: reopened the access log", metadata: ["path": "\(path)"])
        } catch {
            logger.error("SIGHUP: cannot reopen the access log: \(error); still writing to the old file")
        }
    }
}

/// The `Event backend:` line's text: the backend libevent chose and, in words, how a client's
/// hang-up reaches greetd with it.
func describeBackend(_ method: String, reportsHangUp: Bool) -> String {
    if reportsHangUp {
        return "\(method), which tells greetd at once when a client hangs up (EV_FEATURE_EARLY_CLOSE)"
    }
    return "\(method), which has no hang-up notice of its own (no EV_FEATURE_EARLY_CLOSE): greetd spots a hang-up by reading the socket instead"
}
