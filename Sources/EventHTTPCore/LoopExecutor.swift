import EventHTTPSystem
import Synchronization

/// A libevent loop as a Swift executor: async code runs on the loop's own thread, between its
/// callbacks, with no thread hop.
///
/// It is a `SerialExecutor` (make it an actor's `unownedExecutor`) and a `TaskExecutor` (pass it to
/// `Task(executorPreference:)` or `withTaskExecutorPreference`). Jobs run one at a time, in the order
/// they were enqueued (priority is ignored), on ``thread``.
///
/// How a job reaches the loop:
/// - From the loop thread: it joins a queue under an uncontended lock, and the first job of a
///   batch activates one libevent event (`event_active`). No system call.
/// - From any other thread: the same queue, and the first job of a batch writes one byte to a
///   ``LoopWakeup`` self-pipe. While a drain is pending (byte written, event activated, or the
///   loop is running jobs) further jobs only join the queue: wake-ups are coalesced, as in
///   swift-nio's `SelectableEventLoop` (a lock plus a pending-wake flag).
///
/// Why the self-pipe and not `event_active` from other threads: that needs `evthread` locking, and
/// `evthread_use_pthreads()` is process-wide. It puts a lock around every libevent call on every
/// base, HTTP included, to serve the rare cross-thread enqueue. With the pipe, bases stay
/// lock-free and the cost falls only on the thread that crosses, once per batch.
///
/// A loop turn runs the jobs queued so far, and those they enqueue, up to ``jobsPerTurn``. If work
/// is left, it re-arms the event with a zero timeout, so the backend polls I/O before the next
/// batch: a Task that yields in a loop cannot starve the sockets.
///
/// Lifetime and shutdown (the owner of the base follows these):
/// 1. Create the executor on the base's thread, then run the base (``EventBase/run()``). The
///    executor's wake-up event is persistent, so `run()` returns only on ``EventBase/exit()``.
/// 2. After `run()` returns, call ``shutdown()`` on the loop thread. It runs every job still
///    queued, including any enqueued after the loop stopped (from any thread) and any those jobs
///    enqueue. It ends every pending ``sleep(for:)`` with ``ShutdownError`` and runs what that
///    resumes. Then it frees its events and lets go of the base.
/// 3. A job enqueued after `shutdown()` returned could never run, and dropping it would leak its
///    continuation silently. So it is a precondition failure. Before shutting down, the owner
///    ends (cancels and awaits) every Task that could still come back to this loop.
///
/// Ownership: the executor holds its base strongly until ``shutdown()``. Actors hold their
/// executor unowned, so whoever owns the loop keeps the executor alive as long as its actors.
/// Releasing it without `shutdown()` is a precondition failure.
public final class LoopExecutor: SerialExecutor, TaskExecutor, @unchecked Sendable {
    // @unchecked Sendable. The state is of two kinds:
    // - `shared` is behind a lock (EventHTTPSystem's `Lock`, a pthread mutex that ThreadSanitizer sees): the
    //   queue, the drain-pending flag and the closed flag. Any thread.
    // - `base`, `drainEvent`, `wakeEvent`, `spare`, `isDraining`, `armedSleeps` and the three
    //   statistics and test fields below are confined to
    //   `thread`. Every entry point that touches them checks it (`preconditionOnThread`).
    //   `deinit` reads them only when no other reference exists.
    // - The rest is immutable or Sendable (`LoopWakeup`, the atomic counter).

    /// One unit of work: a Swift job in one of the executor's two roles, or a closure from
    /// ``execute(_:)``.
    enum Work {
        /// Isolated to the loop's serial executor (an actor's job; see ``asUnownedSerialExecutor()``).
        case serialJob(UnownedJob)
        /// Nonisolated code of a task that prefers this loop.
        case taskJob(UnownedJob)
        case closure(@Sendable () -> Void)
    }

    private struct Shared {
        var queue: [Work] = []
        /// A drain will run: the event is activated or re-armed, a wake byte is in the pipe, or
        /// the loop is running a batch (and checks the queue again before clearing this).
        var drainPending = false
        /// Set by ``shutdown()`` once the queue is empty for good.
        var closed = false
    }

    /// The most jobs one loop turn runs before it lets the backend poll I/O again.
    public static let jobsPerTurn = 4096

    /// The loop thread: the only thread jobs run on.
    public let thread: LoopThread
    private let shared = Lock(Shared())
    private let wakeup: LoopWakeup
    private let wakeUpCount = Atomic<Int>(0)
    /// The serial-executor role (see ``asUnownedSerialExecutor()``). It holds this object unowned.
    private let serialFace: LoopSerialExecutor

    private var base: EventBase?
    private var drainEvent: Event?
    private var wakeEvent: Event?
    /// The drained batch's buffer, kept to reuse its capacity.
    private var spare: [Work] = []
    private var isDraining = false
    /// Sleeps whose timer is armed (``shutdown()`` finds them through the base). Loop thread only.
    var armedSleeps = 0
    /// Jobs and closures run so far. Loop thread only; a statistic for tests and benchmarks.
    var jobsRun = 0
    /// Sleep timers that fired before their deadline and were re-armed. Loop thread only.
    var earlyTimerRearms = 0
    /// Tests only: arm sleep timers this much early, as a lagging libevent clock would.
    var timerSkewForTesting: Duration = .zero

    /// Creates the executor for `base`. Call it on the base's thread.
    public init(base: EventBase) throws(LibeventError) {
        base.thread.preconditionOnThread()
        thread = base.thread
        wakeup = try LoopWakeup()
        serialFace = LoopSerialExecutor(thread: base.thread)
        // Unowned: the executor owns both events, and shutdown() frees them before it can go.
        drainEvent = try Event(base: base) { [unowned self] _ in self.drain(budget: Self.jobsPerTurn) }
        wakeEvent = try wakeup.makeEvent(on: base) { [unowned self] in self.drain(budget: Self.jobsPerTurn) }
        // Last: if an event above failed, `deinit` runs on this thread with `base` still nil.
        self.base = base
        serialFace.loop = self
    }

    deinit {
        // No other reference exists now, so reading the loop-confined fields is race-free.
        precondition(base == nil, "LoopExecutor released without shutdown(): call it on the loop thread after run() returns")
    }

    /// The base this executor runs on. Loop thread only, and not after ``shutdown()``.
    public var eventBase: EventBase {
        thread.preconditionOnThread()
        guard let base else { preconditionFailure("LoopExecutor.eventBase used after shutdown()") }
        return base
    }

    /// The base, or `nil` after ``shutdown()``. Loop thread only.
    var liveBase: EventBase? {
        thread.preconditionOnThread()
        return base
    }

    /// How many wake-ups (bytes into the self-pipe) cross-thread enqueues have written so far.
    /// Any thread; a statistic for tests and benchmarks (coalescing keeps it far below the number
    /// of jobs).
    public var wakeUps: Int { wakeUpCount.load(ordering: .relaxed) }

    // MARK: Executor conformance

    /// Queues `job`, from a task that prefers this loop (`Task(executorPreference:)`,
    /// `withTaskExecutorPreference`), to run on the loop thread after the jobs already queued.
    /// Any thread. Precondition failure after ``shutdown()``.
    ///
    /// Jobs isolated to the loop (an actor's) come in through ``asUnownedSerialExecutor()``'s
    /// object instead, so each kind runs with the executor context of its role.
    public func enqueue(_ job: consuming ExecutorJob) {
        submitJob(.taskJob(UnownedJob(job)))
    }

    func submitJob(_ work: Work) {
        guard submit(work) else {
            preconditionFailure("job enqueued on a LoopExecutor after shutdown(): it could never run")
        }
    }

    /// Runs `work` on the loop thread after the jobs already queued. Any thread.
    /// Precondition failure after ``shutdown()``.
    public func execute(_ work: @escaping @Sendable () -> Void) {
        guard submit(.closure(work)) else {
            preconditionFailure("closure enqueued on a LoopExecutor after shutdown(): it could never run")
        }
    }

    /// Like ``execute(_:)``, but returns `false` instead of failing after ``shutdown()`` (for a
    /// caller that may race the loop's end, e.g. a stop request for a loop that already stopped).
    public func tryExecute(_ work: @escaping @Sendable () -> Void) -> Bool {
        submit(.closure(work))
    }

    /// The loop as a serial executor, for an actor's `unownedExecutor`.
    ///
    /// A second, internal object stands for that role. The runtime has one `enqueue` for both
    /// roles, but a job must run with the context of the role it came in by. Nonisolated code
    /// run as if isolated to the loop hops once more at its next call. An actor's job run as a
    /// plain task job hops again at each actor entry. Both objects feed the same queue, in order.
    /// The task role keeps this object's identity because the runtime retains and releases a
    /// task's preferred executor by that identity (`Task(executorPreference:)`).
    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: serialFace)
    }

    /// The loop as a task executor: this object.
    public func asUnownedTaskExecutor() -> UnownedTaskExecutor {
        UnownedTaskExecutor(ordinary: self)
    }

    /// Whether the caller runs on the loop thread: the executor is serial and only ever runs
    /// code there. Any thread.
    public func isIsolatingCurrentContext() -> Bool? {
        thread.isCurrent
    }

    /// Stops the process unless the caller runs on the loop thread. Backs `assumeIsolated` and
    /// `preconditionIsolated` for actors on this executor, including from plain libevent callbacks.
    public func checkIsolated() {
        precondition(thread.isCurrent, "not on the LoopExecutor's loop thread")
    }

    // MARK: Queue

    /// Queues `work` and makes sure a drain is pending. Returns `false` (queueing nothing) after
    /// shutdown.
    private func submit(_ work: Work) -> Bool {
        let onLoop = thread.isCurrent
        let outcome: Bool? = shared.withLock { state in
            guard !state.closed else { return nil }
            state.queue.append(work)
            if state.drainPending { return false }
            state.drainPending = true
            return true
        }
        guard let mustSchedule = outcome else { return false }
        if mustSchedule {
            if onLoop {
                // Loop thread: activating an event is a list insertion, no system call. Not closed,
                // so the event exists (shutdown frees it only after closing).
                drainEvent!.activate()
            } else {
                wakeUpCount.add(1, ordering: .relaxed)
                wakeup.wake()
            }
        }
        return true
    }

    /// Runs queued work on the loop thread until the queue is empty or `budget` jobs ran; then
    /// either clears the pending flag (queue empty) or re-arms the drain event for the next turn.
    private func drain(budget: Int) {
        thread.preconditionOnThread()
        precondition(!isDraining, "LoopExecutor drain re-entered")
        isDraining = true
        defer { isDraining = false }
        var ran = 0
        while true {
            var batch = spare
            spare = []
            let gotWork = shared.withLock { state in
                if state.queue.isEmpty {
                    state.drainPending = false
                    return false
                }
                swap(&state.queue, &batch)
                return true
            }
            guard gotWork else {
                spare = batch
                return
            }
            for work in batch { run(work) }
            ran += batch.count
            batch.removeAll(keepingCapacity: true)
            spare = batch
            if ran >= budget {
                // Keep `drainPending` set: the re-armed event is the pending drain.
                rearmForNextTurn()
                return
            }
        }
    }

    private func run(_ work: Work) {
        jobsRun &+= 1
        switch work {
        case .serialJob(let job):
            // The runtime compares the task executor a job runs on with the task's preference at
            // each call and return within the actor, and hops when they differ. Name the loop:
            // tasks that prefer it (handlers) then hop only on actor entry and exit. A task with
            // no preference pays an extra on-loop hop per nested call; the job cannot tell us
            // which kind of task it belongs to.
            job.runSynchronously(isolatedTo: asUnownedSerialExecutor(), taskExecutor: asUnownedTaskExecutor())
        case .taskJob(let job):
            job.runSynchronously(on: asUnownedTaskExecutor())
        case .closure(let body):
            body()
        }
    }

    /// A zero timeout rather than `event_active`: libevent runs events activated during its
    /// active-queue pass in the same pass, before polling I/O; a timer due now waits for the poll.
    private func rearmForNextTurn() {
        do {
            try drainEvent!.add(timeout: .zero)
        } catch {
            preconditionFailure("LoopExecutor could not re-arm its drain event: \(error)")
        }
    }

    // MARK: Shutdown

    /// Runs everything still queued, ends pending sleeps, and frees the executor's events and its
    /// hold on the base. Call it on the loop thread after ``EventBase/run()`` returned, not from
    /// inside a job. Idempotent. Afterwards, enqueueing is a precondition failure.
    ///
    /// Jobs enqueued while the loop was stopped, from any thread, run here on the loop thread,
    /// in order, as do jobs enqueued during this final drain. Each pending ``sleep(for:)`` throws
    /// ``ShutdownError``.
    public func shutdown() {
        thread.preconditionOnThread()
        precondition(!isDraining, "LoopExecutor.shutdown() called from inside a job")
        guard base != nil else { return }
        while true {
            drain(budget: .max)
            if let base, endArmedSleeps(on: base) {
                continue  // their resumptions may have queued jobs here
            }
            let done = shared.withLock { state in
                guard state.queue.isEmpty else { return false }
                state.closed = true
                return true
            }
            if done { break }
        }
        drainEvent = nil
        wakeEvent = nil
        base = nil
    }

    /// Whether ``shutdown()`` has finished. Any thread.
    public var isShutDown: Bool { shared.withLock { $0.closed } }

    /// Thrown by a ``LoopExecutor/sleep(for:)`` still pending when its executor shut down, or
    /// started after.
    public struct ShutdownError: Error, Equatable, Sendable, CustomStringConvertible {
        /// The error; it carries nothing else.
        public init() {}
        /// "the loop executor shut down".
        public var description: String { "the loop executor shut down" }
    }
}
