import EventHTTPSystem
import EventHTTPCore

/// Hands freed memory back to the system after a burst.
///
/// After a burst, glibc keeps the freed memory of thousands of connections in its heap, and RSS
/// stays at the peak. ``schedule()`` (called when the last greeting ends) arms a one-second
/// timer; when it fires, and only if the worker is still idle, EventHTTPSystem's
/// `ProcessResources.releaseFreeHeapMemory()` (`malloc_trim`) returns what it can. At most once a
/// second per worker, never under load. The trim does nothing off glibc.
///
/// Ownership: owns its timer. Threading: loop-confined.
final class MemoryTrim {
    private var timer: Event?

    /// - Parameter isIdle: whether no greeting runs, asked when the timer fires.
    init(base: EventBase, isIdle: @escaping () -> Bool) throws(LibeventError) {
        timer = try Event(base: base) { _ in
            if isIdle() { ProcessResources.releaseFreeHeapMemory() }
        }
    }

    /// Trims in a second, unless a trim is already due.
    func schedule() {
        // Ignored: a trim that cannot be scheduled (libevent out of memory) is a trim skipped,
        // and the next request's end tries again; nothing waits on it.
        if let timer, !timer.isPending { try? timer.add(timeout: .seconds(1)) }
    }
}
