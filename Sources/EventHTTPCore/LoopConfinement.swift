import EventHTTPSystem

/// The thread an `event_base` (and everything hanging off it) belongs to.
///
/// libevent is single-threaded per base in greetd: we never call `evthread_use_pthreads`, so no
/// base has a lock. Every loop-confined type records its loop's thread when it is created and
/// checks it with ``preconditionOnThread()`` on each entry point; the check is one
/// `pthread_self` plus one compare.
public struct LoopThread: Equatable, Sendable {
    let id: ThreadID

    /// The calling thread.
    public static var current: LoopThread { LoopThread(id: .current) }

    /// Whether the caller runs on this thread.
    public var isCurrent: Bool { id.isCurrent }

    /// Stops the process when called from another thread: touching a base from the wrong thread
    /// corrupts libevent's state silently, so failing loudly is the safer outcome.
    @inline(__always)
    public func preconditionOnThread(file: StaticString = #fileID, line: UInt = #line) {
        precondition(isCurrent, "libevent object used off its loop thread", file: file, line: line)
    }
}
