#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one documented way into a loop from another thread: a self-pipe.
///
/// Any thread may call ``wake()``; it writes one byte. On the loop, the event made by
/// ``makeEvent(on:handler:)`` drains the pipe and runs its handler, which then reads whatever
/// request the other thread left in Sendable state (an atomic flag, say). Bases never get locks
/// (`evthread_use_pthreads` is not called), so this is how a signal handler thread or a test asks
/// a loop to stop.
///
/// Ownership: the object owns both pipe descriptors and closes them in `deinit`. The loop side's
/// ``Event`` keeps a strong reference, so the descriptors outlive the event watching them.
public final class LoopWakeup: Sendable {
    // Sendable: both fields are immutable descriptor numbers; write(2) on a pipe is thread-safe.
    let readFD: Int32
    let writeFD: Int32

    public init() throws(LibeventError) {
        var fds: [Int32] = [0, 0]
        try check(pipe(&fds), "pipe")
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        readFD = fds[0]
        writeFD = fds[1]
    }

    deinit {
        close(readFD)
        close(writeFD)
    }

    /// Wakes the loop. Safe from any thread and from a signal handler. A full pipe means a wakeup
    /// is already pending, so `EAGAIN` is not an error.
    public func wake() {
        var byte: UInt8 = 1
        _ = write(writeFD, &byte, 1)
    }

    /// The loop-side event: drains the pipe, then calls `handler` on the loop thread. It is
    /// persistent and already armed; drop it to stop listening.
    public func makeEvent(on base: EventBase, handler: @escaping () -> Void) throws(LibeventError) -> Event {
        let event = try Event(base: base, fd: readFD, flags: [.read, .persist]) { [self] _ in
            var sink = [UInt8](repeating: 0, count: 64)
            while read(readFD, &sink, sink.count) > 0 {}
            handler()
        }
        try event.add()
        return event
    }
}
