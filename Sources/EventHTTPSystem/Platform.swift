// The one file in greetd that knows which C library it is built on. Everything else imports
// EventHTTPSystem for the spellings here; the C library itself is imported where it is used
// (this module does not re-export it).
//
// Linux (glibc) is what is built and tested. The Darwin branches are written to compile against
// macOS's headers but have never been built: nobody working on greetd has a Mac.
#if canImport(Glibc)
public import Glibc
#elseif canImport(Darwin)
public import Darwin
#else
#error("EventHTTPSystem supports glibc-based Linux and Darwin only")
#endif

/// Socket types as plain `Int32`, the type `socket(2)` takes: glibc imports `SOCK_STREAM` as an
/// enum case, Darwin as an `Int32`.
public enum SocketKind {
    /// `SOCK_STREAM`: TCP, or a Unix stream socket.
    public static let stream: Int32 = {
        #if canImport(Glibc)
        Int32(SOCK_STREAM.rawValue)
        #else
        SOCK_STREAM
        #endif
    }()

    /// `SOCK_DGRAM`: UDP, or a Unix datagram socket (systemd's notify socket).
    public static let datagram: Int32 = {
        #if canImport(Glibc)
        Int32(SOCK_DGRAM.rawValue)
        #else
        SOCK_DGRAM
        #endif
    }()
}

/// Flags for `send(2)`/`sendto(2)` as `Int32`.
public enum SendFlags {
    /// A write to a reset connection fails with `EPIPE` instead of raising `SIGPIPE`:
    /// `MSG_NOSIGNAL` on Linux. Darwin has no such flag; there every socket from
    /// ``SystemCalls.openSocket(domain:type:protocol:nonBlocking:)`` carries `SO_NOSIGPIPE` instead, so
    /// this is `0`.
    public static let noSignal: Int32 = {
        #if canImport(Glibc)
        Int32(MSG_NOSIGNAL)
        #else
        0
        #endif
    }()

    /// `MSG_DONTWAIT`: this one call does not block, whatever the descriptor's mode.
    public static let dontWait = Int32(MSG_DONTWAIT)
}

extension SystemCalls {
/// Opens a socket that is close-on-exec from birth, so a child process never inherits it.
///
/// Linux passes `SOCK_CLOEXEC` (and `SOCK_NONBLOCK`) to `socket(2)` itself. Darwin lacks both
/// flags, so it sets `FD_CLOEXEC` and `O_NONBLOCK` with `fcntl` just after (a child forked by
/// another thread in between could inherit the socket) and sets `SO_NOSIGPIPE`, which stands in
/// for `MSG_NOSIGNAL` (see ``SendFlags/noSignal``).
/// - Parameters:
///   - domain: `AF_INET`, `AF_INET6` or `AF_UNIX`.
///   - type: ``SocketKind/stream`` or ``SocketKind/datagram``.
/// - Returns: the descriptor, owned by the caller (close it with ``SystemCalls.closeDescriptor(_:)``).
/// - Throws: ``SystemError`` named `socket` (`EMFILE`, `ENFILE`, `EAFNOSUPPORT`, ...). Nothing is
///   left open after a throw.
public static func openSocket(domain: Int32, type: Int32, protocol proto: Int32 = 0, nonBlocking: Bool = false) throws(SystemError) -> Int32 {
    #if canImport(Glibc)
    var flags = Int32(SOCK_CLOEXEC.rawValue)
    if nonBlocking { flags |= Int32(SOCK_NONBLOCK.rawValue) }
    return try SystemCalls.systemCall("socket") { socket(domain, type | flags, proto) }
    #else
    let fd = try SystemCalls.systemCall("socket") { socket(domain, type, proto) }
    do throws(SystemError) {
        try SystemCalls.setCloseOnExec(fd)
        if nonBlocking { try SystemCalls.setNonBlocking(fd) }
        try SystemCalls.setSocketOption(fd, level: SOL_SOCKET, option: SO_NOSIGPIPE, value: 1)
    } catch {
        try? SystemCalls.closeDescriptor(fd)  // already failing; the first error is the one to report
        throw error
    }
    return fd
    #endif
}
}

/// `RLIMIT_NOFILE` in the type `getrlimit`/`setrlimit` take on this platform.
let openFilesResource: Int32 = {
    #if canImport(Glibc)
    Int32(RLIMIT_NOFILE.rawValue)
    #else
    RLIMIT_NOFILE
    #endif
}()

/// The C library's symbolic name for an errno value (`EADDRINUSE`), or `nil` when it has none.
///
/// glibc 2.32 and later have `strerrorname_np`; it is looked up at run time, because Swift's
/// Glibc module does not declare it (it sits behind `_GNU_SOURCE`) and older glibc lacks it.
/// Darwin has no such function, so names fall back to the number there.
func cLibraryErrnoName(_ code: Int32) -> String? {
    #if canImport(Glibc)
    guard let lookup = strerrornameNP.function, let name = lookup(code) else { return nil }
    return String(cString: name)
    #else
    return nil
    #endif
}

#if canImport(Glibc)
/// `strerrorname_np`, found once (a global's initialiser runs once, thread-safely).
private let strerrornameNP = CFunction<@convention(c) (Int32) -> UnsafePointer<CChar>?>(named: "strerrorname_np")

/// glibc's `malloc_trim`, found once: `<malloc.h>` is not part of Swift's Glibc module.
private let mallocTrim = CFunction<@convention(c) (Int) -> Int32>(named: "malloc_trim")

/// `pipe2`, found once: Swift's Glibc module hides it behind `_GNU_SOURCE` too. glibc has had it
/// since 2.9, so the `pipe`+`fcntl` fallback in ``SystemCalls.makePipe(nonBlocking:)`` is for form's sake.
let pipe2Function = CFunction<@convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32>(named: "pipe2")

/// A C function looked up by name in the process's own symbols.
// @unchecked Sendable: `function` is immutable after init and is a plain code address.
struct CFunction<Function>: @unchecked Sendable {
    let function: Function?

    init(named name: String) {
        // dlopen(NULL) is the main program, whose global scope includes libc. The handle is never
        // closed: it only pins the program itself.
        guard let handle = dlopen(nil, RTLD_NOW), let symbol = dlsym(handle, name) else {
            function = nil
            return
        }
        function = unsafeBitCast(symbol, to: Function.self)
    }
}
#endif

extension SystemCalls {
/// Opens a pipe whose ends are both close-on-exec, and non-blocking if asked.
/// - Returns: the read end and the write end, owned by the caller.
/// - Throws: ``SystemError`` named `pipe` (`EMFILE`, `ENFILE`). Nothing is left open after a throw.
public static func makePipe(nonBlocking: Bool = false) throws(SystemError) -> (read: Int32, write: Int32) {
    var fds: [Int32] = [-1, -1]
    #if canImport(Glibc)
    if let pipe2 = pipe2Function.function {
        let flags = O_CLOEXEC | (nonBlocking ? O_NONBLOCK : 0)
        try SystemCalls.systemCall("pipe2") { pipe2(&fds, flags) }
        return (fds[0], fds[1])
    }
    #endif
    try SystemCalls.systemCall("pipe") { pipe(&fds) }
    do throws(SystemError) {
        for fd in fds {
            try SystemCalls.setCloseOnExec(fd)
            if nonBlocking { try SystemCalls.setNonBlocking(fd) }
        }
    } catch {
        try? SystemCalls.closeDescriptor(fds[0])  // already failing; the first error is the one to report
        try? SystemCalls.closeDescriptor(fds[1])
        throw error
    }
    return (fds[0], fds[1])
}
}

extension sockaddr_in {
    /// An IPv4 socket address with its family set (and, on Darwin, its length, which
    /// `getaddrinfo` sets too, so that the bytes compare equal to a resolved address).
    /// - Parameter port: in host byte order.
    public init(address: in_addr, port: UInt16) {
        self.init()
        #if canImport(Darwin)
        sin_len = UInt8(MemoryLayout<sockaddr_in>.size)
        #endif
        sin_family = sa_family_t(AF_INET)
        sin_port = port.bigEndian
        sin_addr = address
    }
}

extension sockaddr_in6 {
    /// An IPv6 socket address with its family set (and, on Darwin, its length).
    /// - Parameter port: in host byte order.
    public init(address: in6_addr, port: UInt16) {
        self.init()
        #if canImport(Darwin)
        sin6_len = UInt8(MemoryLayout<sockaddr_in6>.size)
        #endif
        sin6_family = sa_family_t(AF_INET6)
        sin6_port = port.bigEndian
        sin6_addr = address
    }
}

extension sigaction {
    /// The handler (`sa_handler`), under its per-platform spelling: a union member whose path
    /// differs between Glibc (`__sigaction_handler`) and Darwin (`__sigaction_u`).
    public var handler: (@convention(c) (Int32) -> Void)? {
        get {
            #if canImport(Glibc)
            __sigaction_handler.sa_handler
            #else
            __sigaction_u.__sa_handler
            #endif
        }
        set {
            #if canImport(Glibc)
            __sigaction_handler.sa_handler = newValue
            #else
            __sigaction_u.__sa_handler = newValue
            #endif
        }
    }
}

/// `RLIMIT_CORE` in the type `getrlimit`/`setrlimit` take on this platform.
extension ResourceLimits {
    /// `RLIMIT_CORE` in the type `getrlimit`/`setrlimit` take on this platform.
    public static let coreFileSize: Int32 = {
    #if canImport(Glibc)
    Int32(RLIMIT_CORE.rawValue)
    #else
    RLIMIT_CORE
    #endif
    }()
}

extension ProcessSignals {
    /// Installs `handler` for `signal` (`sigaction`), with an empty mask.
    /// - Parameter restartingCalls: `SA_RESTART`: a blocking call the signal interrupts resumes
    ///   instead of failing with `EINTR`. Without it, ``SystemCalls.systemCall(_:_:)`` retries them instead.
    /// - Throws: ``SystemError`` named `sigaction` (`EINVAL` for `SIGKILL`, `SIGSTOP` or a bad number).
    public static func setHandler(_ handler: @convention(c) (Int32) -> Void, for signal: Int32, restartingCalls: Bool) throws(SystemError) {
        var action = sigaction()
        action.handler = handler
        action.sa_flags = restartingCalls ? SA_RESTART : 0
        // sigemptyset fails only for a NULL set.
        _ = sigemptyset(&action.sa_mask)
        try SystemCalls.systemCall("sigaction") { sigaction(signal, &action, nil) }
    }
}

/// Process-wide memory and CPU figures.
public enum ProcessResources {
    /// Gives freed heap memory back to the kernel (glibc's `malloc_trim(0)`), so the resident
    /// size falls after a burst. Any thread; it takes the allocator's locks for a moment.
    /// - Returns: whether memory was released; always `false` where the allocator has no such
    ///   call (Darwin, musl).
    @discardableResult
    public static func releaseFreeHeapMemory() -> Bool {
        #if canImport(Glibc)
        guard let trim = mallocTrim.function else { return false }
        return trim(0) != 0
        #else
        return false
        #endif
    }

    /// Bytes per memory page (`sysconf(_SC_PAGESIZE)`), e.g. to turn `/proc/self/statm` into bytes.
    public static var pageSize: Int {
        // sysconf(_SC_PAGESIZE) cannot fail: every POSIX system has a page size.
        Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// CPU time the process has used so far, user plus system (`getrusage(RUSAGE_SELF)`), as
    /// Prometheus's `process_cpu_seconds_total` counts it.
    public static func cpuTime() throws(SystemError) -> Duration {
        var usage = rusage()
        #if canImport(Glibc)
        let who = RUSAGE_SELF.rawValue
        #else
        let who = RUSAGE_SELF
        #endif
        try SystemCalls.systemCall("getrusage(RUSAGE_SELF)") { getrusage(who, &usage) }
        func duration(_ time: timeval) -> Duration { .seconds(Int64(time.tv_sec)) + .microseconds(Int64(time.tv_usec)) }
        return duration(usage.ru_utime) + duration(usage.ru_stime)
    }
}
