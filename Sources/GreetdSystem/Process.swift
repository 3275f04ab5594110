// Process-wide facts and settings: threads, resource limits, clocks, signals.

/// The identity of a thread (`pthread_t`), for checking that thread-confined objects stay on
/// their thread.
// @unchecked Sendable: a `pthread_t` is an opaque id (an integer on Linux, a pointer on Darwin)
// that is only compared with `pthread_equal`, never dereferenced.
public struct ThreadID: Equatable, @unchecked Sendable {
    @usableFromInline let id: pthread_t

    /// The calling thread.
    @inlinable
    public static var current: ThreadID { ThreadID(id: pthread_self()) }

    @usableFromInline init(id: pthread_t) { self.id = id }

    /// Whether the caller runs on this thread: one `pthread_self` and one compare.
    @inlinable
    public var isCurrent: Bool { pthread_equal(id, pthread_self()) != 0 }

    /// Whether both name the same thread (`pthread_equal`).
    @inlinable
    public static func == (lhs: ThreadID, rhs: ThreadID) -> Bool { pthread_equal(lhs.id, rhs.id) != 0 }

    /// Sends `signal` to this thread (`pthread_kill`); the thread must still be running.
    /// - Throws: ``SystemError`` named `pthread_kill` (`EINVAL` for a bad signal number).
    public func send(signal: Int32) throws(SystemError) {
        // pthread functions return the error number instead of setting errno.
        let code = pthread_kill(id, signal)
        if code != 0 { throw SystemError(call: "pthread_kill", errno: Errno(code)) }
    }
}

/// The process's resource limits (`getrlimit`/`setrlimit`).
public enum ResourceLimits {
    /// The soft and hard limits on open descriptors now (`RLIMIT_NOFILE`).
    public static func openFiles() throws(SystemError) -> rlimit {
        var limit = rlimit()
        try systemCall("getrlimit(RLIMIT_NOFILE)") { getrlimit(openFilesResource, &limit) }
        return limit
    }

    /// Sets the soft and hard limits on open descriptors (`RLIMIT_NOFILE`): fails with `EPERM`
    /// to raise the hard limit unprivileged, `EINVAL` for a soft limit above the hard one.
    public static func setOpenFiles(_ limit: rlimit) throws(SystemError) {
        var limit = limit
        try systemCall("setrlimit(RLIMIT_NOFILE)") { setrlimit(openFilesResource, &limit) }
    }
}

/// Clock readings (`clock_gettime`).
public enum SystemClock {
    /// The wall clock (`CLOCK_REALTIME`): time since 1970, which may jump when it is set.
    public static func realtime() -> timespec { read(CLOCK_REALTIME) }

    /// A clock that never jumps (`CLOCK_MONOTONIC`), for measuring intervals.
    public static func monotonic() -> timespec { read(CLOCK_MONOTONIC) }

    private static func read(_ clock: clockid_t) -> timespec {
        var time = timespec()
        // clock_gettime fails only for an unknown clock or a bad pointer (EINVAL, EFAULT); neither
        // can happen for these two clocks and a local.
        let result = clock_gettime(clock, &time)
        assert(result == 0, "clock_gettime: \(Errno.current)")
        return time
    }
}

/// Process-wide signal settings.
public enum ProcessSignals {
    /// Ignores `SIGPIPE` for the whole process, so a write to a connection whose peer has gone
    /// fails with `EPIPE` instead of killing the process. Needed where a library writes to
    /// sockets without `MSG_NOSIGNAL` (libevent's `writev`). Idempotent; any thread.
    public static func ignoreBrokenPipe() {
        // The result (the previous handler, or SIG_ERR) is ignored: signal() fails only for an
        // invalid signal number (EINVAL), and SIGPIPE is valid everywhere.
        _ = signal(SIGPIPE, SIG_IGN)
    }

    /// Unblocks `signals` for the calling thread (`pthread_sigmask(SIG_UNBLOCK)`), so they can
    /// interrupt it. Threads start with their creator's mask, and some creators block nearly
    /// everything (Foundation's `Thread` does).
    /// - Throws: ``SystemError`` named `sigaddset` for an invalid signal number (`EINVAL`).
    public static func unblockOnThisThread(_ signals: [Int32]) throws(SystemError) {
        var set = sigset_t()
        // sigemptyset fails only for a NULL set.
        _ = sigemptyset(&set)
        for signal in signals {
            try systemCall("sigaddset") { sigaddset(&set, signal) }
        }
        // pthread functions return the error number instead of setting errno; pthread_sigmask
        // fails only for an invalid `how`.
        let code = pthread_sigmask(SIG_UNBLOCK, &set, nil)
        if code != 0 { throw SystemError(call: "pthread_sigmask", errno: Errno(code)) }
    }
}

/// Online processors (`sysconf(_SC_NPROCESSORS_ONLN)`), at least 1: a failed query (`-1`)
/// counts as one processor.
public var onlineProcessorCount: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
