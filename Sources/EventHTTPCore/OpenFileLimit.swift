import EventHTTPSystem
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
    /// - Returns: the soft limit now in force; `0` when it cannot be read.
    @discardableResult
    public static func raiseToHardLimit() -> UInt64 {
        // getrlimit fails only for a bad resource or pointer (EINVAL, EFAULT): 0 says "unknown".
        guard var limit = try? ResourceLimits.openFiles() else { return 0 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            // Raising the soft limit up to the hard one needs no privilege; were it refused
            // (EPERM under some sandboxes), the old limit simply stays, and is what we return.
            if (try? ResourceLimits.setOpenFiles(raised)) != nil { limit = raised }
        }
        return UInt64(limit.rlim_cur)
    }

    /// Caps the soft limit on open files at `FD_SETSIZE` when libevent runs on `select`: Debian's
    /// libevent is built with `_FORTIFY_SOURCE`, whose `FD_SET` aborts the process for a descriptor
    /// of 1024 or more, so `socket` or `accept` must fail with `EMFILE` first.
    /// - Returns: whether the limit was lowered.
    @discardableResult
    public static func capForSelect() -> Bool {
        let cap = rlim_t(FD_SETSIZE)
        // A limit that cannot be read or lowered (neither happens for a lower soft limit) is
        // reported as "not lowered", which the caller logs.
        guard var limit = try? ResourceLimits.openFiles(), limit.rlim_cur > cap else { return false }
        limit.rlim_cur = cap
        return (try? ResourceLimits.setOpenFiles(limit)) != nil
    }
}
