#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The process's open-file limit (`RLIMIT_NOFILE`): every connection is a descriptor, so both
/// greetd and greet-stress adjust it at start.
public enum OpenFileLimit {
    /// Raises the soft limit to the hard limit (as nginx's `worker_rlimit_nofile` does): many
    /// shells start with a soft limit of 1024.
    /// - Returns: the soft limit now in force.
    @discardableResult
    public static func raiseToHardLimit() -> UInt64 {
        var limit = rlimit()
        guard getrlimit(resource, &limit) == 0 else { return 0 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(resource, &raised) == 0 { limit = raised }
        }
        return UInt64(limit.rlim_cur)
    }

    /// Caps the soft limit on open files at `FD_SETSIZE` when libevent runs on `select`: Debian's
    /// libevent is built with `_FORTIFY_SOURCE`, whose `FD_SET` aborts the process for a descriptor
    /// of 1024 or more, so `socket` or `accept` must fail with `EMFILE` first.
    /// - Returns: whether the limit was lowered.
    @discardableResult
    public static func capForSelect() -> Bool {
        var limit = rlimit()
        let cap = rlim_t(FD_SETSIZE)
        guard getrlimit(resource, &limit) == 0, limit.rlim_cur > cap else { return false }
        limit.rlim_cur = cap
        return setrlimit(resource, &limit) == 0
    }

    #if canImport(Glibc)
    private static let resource = Int32(RLIMIT_NOFILE.rawValue)
    #else
    private static let resource = RLIMIT_NOFILE
    #endif
}
