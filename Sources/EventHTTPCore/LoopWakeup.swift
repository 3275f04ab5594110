import EventHTTPSystem
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
/// Ownership: the object owns both pipe descriptors (non-blocking, close-on-exec) and closes them
/// in `deinit`. The loop side's ``Event`` keeps a strong reference, so the descriptors outlive
/// the event watching them.
public final class LoopWakeup: Sendable {
    // Sendable: both fields are immutable descriptor numbers; write(2) on a pipe is thread-safe.
    let readFD: Int32
    let writeFD: Int32

    /// Opens the pipe.
    /// - Throws: `callFailed(function: "pipe2", ...)` (`EMFILE`, `ENFILE`) when no descriptor is left.
    public init() throws(LibeventError) {
        do {
            (readFD, writeFD) = try SystemCalls.makePipe(nonBlocking: true)
        } catch {
            throw LibeventError(error)
        }
    }

    deinit {
        // close fails only with EBADF (a double close: a bug) or EIO (not for a pipe).
        for fd in [readFD, writeFD] {
            do { try SystemCalls.closeDescriptor(fd) } catch { assertionFailure("LoopWakeup: \(error)") }
        }
    }

    /// Wakes the loop. Safe from any thread and from a signal handler. A full pipe means a wakeup
    /// is already pending, so `EAGAIN` is not an error.
    public func wake() {
        var byte: UInt8 = 1
        do {
            // Written or would block (a full pipe: a wakeup is pending): either way the loop wakes.
            _ = try SystemCalls.nonBlockingSystemCall("write(wakeup pipe)") { write(writeFD, &byte, 1) }
        } catch {
            // Left after EINTR (retried) and EAGAIN (a wakeup pending): EBADF, or EPIPE. Neither
            // can happen while this object holds both ends.
            assertionFailure("LoopWakeup.wake: \(error)")
        }
    }

    /// The loop-side event: drains the pipe, then calls `handler` on the loop thread. It is
    /// persistent and already armed; drop it to stop listening.
    public func makeEvent(on base: EventBase, handler: @escaping () -> Void) throws(LibeventError) -> Event {
        let event = try Event(base: base, fd: readFD, flags: [.read, .persist]) { [self] _ in
            drain()
            handler()
        }
        try event.add()
        return event
    }

    /// Reads until the pipe is empty, so a level-triggered backend does not report it again.
    private func drain() {
        var sink = [UInt8](repeating: 0, count: 64)
        while true {
            do {
                // 0 (end of stream) cannot happen while this object holds the write end.
                guard case .processed(let count) = try SystemCalls.nonBlockingSystemCall("read(wakeup pipe)", {
                    read(readFD, &sink, sink.count)
                }), count > 0 else { return }
            } catch {
                // Left after EINTR (retried) and EAGAIN (empty: the normal end): EBADF, which
                // cannot happen while this object holds the descriptor.
                assertionFailure("LoopWakeup.drain: \(error)")
                return
            }
        }
    }
}
