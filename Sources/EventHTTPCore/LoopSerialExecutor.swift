/// The serial-executor role of a ``LoopExecutor``: the object behind
/// ``LoopExecutor/asUnownedSerialExecutor()``. Internal; users pass what that returns.
final class LoopSerialExecutor: SerialExecutor, @unchecked Sendable {
    // @unchecked Sendable: `loop` is written once, in LoopExecutor.init, before this object is
    // handed to anyone, and only read afterwards; `thread` is immutable.
    /// Unowned: the loop owns this object and, by its lifetime rules, outlives every actor on it.
    unowned var loop: LoopExecutor?
    /// The loop thread, for the isolation checks.
    let thread: LoopThread

    init(thread: LoopThread) {
        self.thread = thread
    }

    func enqueue(_ job: consuming ExecutorJob) {
        guard let loop else { preconditionFailure("LoopSerialExecutor used before its loop was set") }
        loop.submitJob(.serialJob(UnownedJob(job)))
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// Whether the caller runs on the loop thread. Backs `assumeIsolated` and
    /// `preconditionIsolated` for actors on the loop, including from plain libevent callbacks.
    func isIsolatingCurrentContext() -> Bool? {
        thread.isCurrent
    }

    /// Stops the process unless the caller runs on the loop thread (for runtimes that do not
    /// ask ``isIsolatingCurrentContext()``).
    func checkIsolated() {
        precondition(thread.isCurrent, "not on the LoopExecutor's loop thread")
    }
}
