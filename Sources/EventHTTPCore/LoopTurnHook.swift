import CLibevent

/// Runs a handler once at the end of the loop pass in which it was scheduled: after the callbacks
/// already due in that pass, and before the loop waits for events again.
///
/// It is an ``Event`` with no descriptor and no timeout, never added, only made active
/// (`event_active`). What libevent does with it (2.1, and 2.0 alike):
/// - An `event_base` made by ``EventBase`` has one priority, so one active queue, run first in,
///   first out. ``schedule()`` puts the hook at the tail of that queue; callbacks already in it
///   run first.
/// - The pass (`event_process_active_single_queue`) runs until the queue is empty, *including*
///   callbacks made active during the pass. So a hook scheduled from a callback runs in the same
///   pass, never later; a callback made active after the hook runs after it, and if that one
///   schedules the hook again, the hook runs again, still in the same pass.
/// - Scheduling an already scheduled hook does nothing (libevent merges the activations).
/// - Priorities would be wrong here: after a pass that ran a higher-priority callback, libevent
///   skips the lower-priority queues and polls again, so under steady load a low-priority hook
///   could wait indefinitely.
/// - `event_base_loopbreak` abandons the rest of the pass (the hook with it);
///   `event_base_loopexit` (``EventBase/exit()``) does not. Whoever breaks the loop runs the
///   hook's work itself after ``EventBase/run()`` returns.
///
/// A hook scheduled outside ``EventBase/run()`` (before it, say) runs in the loop's first pass.
///
/// Ownership: owns its ``Event`` (which holds the base); dropping the hook unschedules it.
/// Threading: loop-confined to its base.
public final class LoopTurnHook {
    private let event: Event

    /// A hook that calls `handler` on the loop thread, once per ``schedule()`` (merged within a
    /// pass). The handler may schedule the hook again; it then runs again in the same pass.
    public init(base: EventBase, handler: @escaping () -> Void) throws(LibeventError) {
        event = try Event(base: base, flags: []) { _ in handler() }
    }

    /// Makes the handler run at the end of the current loop pass (or in the first pass of the
    /// next ``EventBase/run()``). On the loop thread; cheap (no system call, no allocation).
    public func schedule() {
        event.activate(.timeout)
    }
}
