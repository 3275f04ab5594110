#if canImport(Glibc)
public import Glibc
#elseif canImport(Darwin)
public import Darwin
#endif
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
        try SystemCalls.systemCall("getrlimit(RLIMIT_NOFILE)") { getrlimit(openFilesResource, &limit) }
        return limit
    }

    /// Sets the soft and hard limits on open descriptors (`RLIMIT_NOFILE`): fails with `EPERM`
    /// to raise the hard limit unprivileged, `EINVAL` for a soft limit above the hard one.
    public static func setOpenFiles(_ limit: rlimit) throws(SystemError) {
        var limit = limit
        try SystemCalls.systemCall("setrlimit(RLIMIT_NOFILE)") { setrlimit(openFilesResource, &limit) }
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
            try SystemCalls.systemCall("sigaddset") { sigaddset(&set, signal) }
        }
        // pthread functions return the error number instead of setting errno; pthread_sigmask
        // fails only for an invalid `how`.
        let code = pthread_sigmask(SIG_UNBLOCK, &set, nil)
        if code != 0 { throw SystemError(call: "pthread_sigmask", errno: Errno(code)) }
    }
}

/// Online processors (`sysconf(_SC_NPROCESSORS_ONLN)`), at least 1: a failed query (`-1`)
/// counts as one processor.
extension ProcessResources {
    /// Processors online (`sysconf(_SC_NPROCESSORS_ONLN)`), at least 1.
    public static var onlineProcessorCount: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
}

extension ProcessResources {
    /// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of the times in `/proc/<pid>/stat`.
    public static var clockTicksPerSecond: Int {
        // sysconf(_SC_CLK_TCK) cannot fail on Linux or Darwin (100 almost everywhere).
        Int(sysconf(Int32(_SC_CLK_TCK)))
    }
}

/// Small files and directories read whole: the kernel's `/proc` pseudo-files above all.
public enum SystemFiles {
    /// The start of a small text file: up to `limit` bytes (`open`/`read`, EINTR retried),
    /// decoded as UTF-8. Any thread.
    /// - Throws: ``SystemError`` named `open(<path>)` (`ENOENT` off Linux for `/proc` files) or
    ///   `read(<path>)`.
    public static func readText(atPath path: String, limit: Int = 4096) throws(SystemError) -> String {
        let fd = try SystemCalls.systemCall("open(\(path))") { open(path, O_RDONLY | O_CLOEXEC) }
        // Read-only: close has nothing to flush, so its failure (EBADF would be a bug) loses nothing.
        defer { try? SystemCalls.closeDescriptor(fd) }
        var bytes = [UInt8](repeating: 0, count: limit)
        var count = 0
        while count < limit {
            let result = bytes.withUnsafeMutableBytes { buffer in
                SystemCalls.valueOrErrno { read(fd, buffer.baseAddress! + count, limit - count) }
            }
            switch result {
            case .success(0): return String(decoding: bytes[0..<count], as: UTF8.self)
            case .success(let got): count += got
            case .failure(let code): throw SystemError(call: "read(\(path))", errno: code)
            }
        }
        return String(decoding: bytes[0..<count], as: UTF8.self)
    }

    /// How many entries a directory holds, `.` and `..` (and every other name starting with a
    /// dot) not counted (`opendir`/`readdir`). Any thread.
    /// - Returns: the count, which includes the descriptor `opendir` itself holds when the
    ///   directory is `/proc/self/fd`.
    /// - Throws: ``SystemError`` named `opendir(<path>)`.
    public static func entryCount(atPath path: String) throws(SystemError) -> Int {
        guard let directory = opendir(path) else { throw SystemError(call: "opendir(\(path))", errno: .current) }
        // closedir fails only for an invalid stream (EBADF), which this one is not.
        defer { _ = closedir(directory) }
        var count = 0
        // readdir's nil ends the listing, and ends it early on a read error (EBADF, ENOENT for a
        // directory removed meanwhile): a count of what was read is as good as it gets then.
        while let entry = readdir(directory) {
            let first = withUnsafeBytes(of: entry.pointee.d_name) { $0[0] }
            if first != UInt8(ascii: ".") { count += 1 }
        }
        return count
    }
}

// CPUs the process may run on: its affinity mask and its cgroup's CPU quota. greetd sizes its
// worker loops by these, in the spirit of Go 1.25's container-aware GOMAXPROCS: a loop per host
// core is too many under `taskset` or in a CPU-limited container.
extension ProcessResources {
    /// CPUs in the calling thread's affinity mask (`sched_getaffinity`), or `nil` where the call
    /// does not exist (Darwin) or fails.
    public static func affinityCPUCount() -> Int? {
        #if os(Linux)
        guard let getAffinity = schedGetAffinity.function else { return nil }
        // A cpu_set_t's 1024 bits (the type, like the call, sits behind _GNU_SOURCE).
        var mask = [UInt64](repeating: 0, count: 16)
        // Fails with EINVAL only when the mask is wider than 1024 CPUs: `nil` then, and the
        // caller falls back to the online count.
        let status = mask.withUnsafeMutableBytes { bytes in
            SystemCalls.valueOrErrno { getAffinity(0, bytes.count, bytes.baseAddress!) }
        }
        guard case .success = status else { return nil }
        // CPU_COUNT is a C macro Swift cannot see: count the mask's bits.
        let count = mask.reduce(0) { $0 + $1.nonzeroBitCount }
        return count > 0 ? count : nil
        #else
        return nil
        #endif
    }

    /// The cgroup v2 CPU quota of this process, in whole CPUs rounded up: the smallest
    /// `cpu.max` on the way from the process's cgroup (`0::/path` in `cgroupFile`) up to the
    /// hierarchy's root under `cgroupRoot`. `nil`: no quota (`max`), no cgroup v2, or files that
    /// cannot be read.
    /// - Parameters:
    ///   - cgroupFile: `/proc/self/cgroup` (a test points it elsewhere).
    ///   - cgroupRoot: where the v2 hierarchy is mounted, `/sys/fs/cgroup`.
    public static func cgroupCPULimit(cgroupFile: String = "/proc/self/cgroup", cgroupRoot: String = "/sys/fs/cgroup") -> Int? {
        guard let membership = try? SystemFiles.readText(atPath: cgroupFile, limit: 16 * 1024) else { return nil }
        // The v2 line is `0::<path>`; a v1-only system has none.
        guard let line = membership.split(separator: "\n").first(where: { $0.hasPrefix("0::") }) else { return nil }
        var path = String(line.dropFirst(3))
        var limit: Int?
        while true {
            let directory = path == "/" || path.isEmpty ? cgroupRoot : cgroupRoot + path
            if let text = try? SystemFiles.readText(atPath: directory + "/cpu.max", limit: 256),
               let cpus = cpuMaxLimit(text) {
                limit = min(limit ?? cpus, cpus)
            }
            guard path != "/", !path.isEmpty, let slash = path.lastIndex(of: "/") else { break }
            path = slash == path.startIndex ? "/" : String(path[..<slash])
        }
        return limit
    }

    /// A `cpu.max` file's quota in whole CPUs, rounded up and at least 1: `"150000 100000"` is 2;
    /// `"max 100000"` (no quota) or text that is not two numbers is `nil`.
    public static func cpuMaxLimit(_ text: String) -> Int? {
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard fields.count >= 1, fields[0] != "max", let quota = Int(fields[0]), quota > 0 else { return nil }
        let period = fields.count >= 2 ? Int(fields[1]) ?? 100_000 : 100_000
        guard period > 0 else { return nil }
        return max(1, (quota + period - 1) / period)
    }
}

#if os(Linux)
/// glibc's `sched_getaffinity`, found once: Swift's Glibc module hides it behind `_GNU_SOURCE`.
private let schedGetAffinity = CFunction<@convention(c) (pid_t, Int, UnsafeMutableRawPointer) -> Int32>(named: "sched_getaffinity")
#endif
