import CLibevent

/// A one-shot, never-early timer kept inside the object it serves: one allocation (the
/// `struct event` and what the callback needs), no Swift object of its own.
///
/// It behaves as ``PunctualTimer`` (it fires at an instant of `ContinuousClock`, never before
/// it: it refreshes the loop's cached time before arming, rounds up to the microsecond, and
/// re-arms for what is left should libevent still wake it early), but where a `PunctualTimer`
/// costs three allocations (the timer object, its ``Event`` and the `struct event`), this one
/// costs one: `event_get_struct_event_size()` bytes for the C event, followed by the target,
/// its tag and the instant due. It is `~Copyable`, so exactly one owner frees it. Objects that
/// live in tens of thousands (a pending request's timer) keep it as a stored property.
///
/// Ownership: the timer's owner must be its target (or be owned by it): the target is held
/// `unowned` (a timer that outlived its target would trap, never call freed memory). The timer
/// keeps its ``EventBase`` alive. Dropping the timer (setting the optional that holds it to
/// `nil`, or freeing its owner) deletes the event from the loop and frees the bytes: no callback
/// can follow. The target may drop the timer from inside ``EventTarget/eventFired(tag:flags:)``:
/// nothing touches the timer after that call.
///
/// Threading: loop-confined to its ``EventBase``: every method, and the drop, checks it.
public struct LoopTimer: ~Copyable {
    /// What the callback needs, stored right after the `struct event` bytes.
    fileprivate struct Trailer {
        unowned let target: any EventTarget
        let tag: Int
        /// The instant it fires at, while scheduled.
        var due: ContinuousClock.Instant?
    }

    /// The `struct event`, then a ``Trailer``: owned, allocated in `init`, freed in `deinit`.
    private let storage: UnsafeMutableRawPointer
    /// Strong: the base must outlive its events (see ``EventBase``).
    private let base: EventBase

    /// Where the trailer starts: the C event's size (asked of the libevent actually loaded),
    /// rounded up to the trailer's alignment.
    fileprivate static let trailerOffset: Int = {
        let align = max(MemoryLayout<Trailer>.alignment, 16)
        return (event_get_struct_event_size() + align - 1) / align * align
    }()

    private var raw: OpaquePointer { OpaquePointer(storage) }
    private var trailer: UnsafeMutablePointer<Trailer> {
        (storage + Self.trailerOffset).assumingMemoryBound(to: Trailer.self)
    }

    /// A timer, not yet scheduled, that calls `target.eventFired(tag:flags:)` (with `.timeout`)
    /// when due. `target` must own the timer (see the type's ownership). Loop thread only.
    /// - Throws: ``LibeventError/callFailed(function:errno:)`` if libevent refuses the event
    ///   (it does not for a timer; kept for the signature's honesty).
    public init(base: EventBase, target: any EventTarget, tag: Int) throws(LibeventError) {
        base.thread.preconditionOnThread()
        let storage = UnsafeMutableRawPointer.allocate(byteCount: Self.trailerOffset + MemoryLayout<Trailer>.size,
                                                       alignment: max(MemoryLayout<Trailer>.alignment, 16))
        // The callback finds everything through `arg`, the storage itself: no retain to balance.
        guard event_assign(OpaquePointer(storage), base.raw, -1, 0, loopTimerTrampoline, storage) == 0 else {
            storage.deallocate()
            throw .callFailed(function: "event_assign", errno: nil)
        }
        (storage + Self.trailerOffset).bindMemory(to: Trailer.self, capacity: 1)
            .initialize(to: Trailer(target: target, tag: tag, due: nil))
        self.storage = storage
        self.base = base
        base.counters.liveEvents.bump()
    }

    deinit {
        base.thread.preconditionOnThread()
        // event_del fails only for an event with no base, which an assigned one always has.
        _ = event_del(raw)
        // Tells libevent's debug mode that the bytes are going away; a no-op otherwise.
        event_debug_unassign(raw)
        trailer.deinitialize(count: 1)
        storage.deallocate()
        base.counters.liveEvents.bump(-1)
    }

    /// The instant it fires at, while scheduled; `nil` once it has fired or was cancelled.
    public var due: ContinuousClock.Instant? { trailer.pointee.due }

    /// Whether the C event is armed (a schedule not yet fired).
    public var isPending: Bool { event_pending(raw, Int16(EV_TIMEOUT), nil) != 0 }

    /// Fires at `instant` (on the next loop turn if it has passed), never before it. Replaces
    /// any earlier schedule. Loop thread only.
    /// - Throws: ``LibeventError`` if libevent cannot add the event (out of memory); the timer
    ///   is then not scheduled.
    public func schedule(at instant: ContinuousClock.Instant) throws(LibeventError) {
        base.thread.preconditionOnThread()
        trailer.pointee.due = instant
        do {
            try Self.arm(raw, base: base.raw, for: instant - .now)
        } catch {
            trailer.pointee.due = nil
            throw error
        }
    }

    /// Unschedules; safe when not scheduled. Loop thread only.
    public func cancel() {
        base.thread.preconditionOnThread()
        trailer.pointee.due = nil
        _ = event_del(raw)
    }

    fileprivate static func arm(_ raw: OpaquePointer, base: OpaquePointer, for remaining: Duration) throws(LibeventError) {
        // As PunctualTimer: the cached time may be a loop turn old; refresh it so that the
        // timeout counts from now. timeval(duration:) rounds up to the microsecond.
        event_base_update_cache_time(base)
        var tv = timeval(duration: max(remaining, .zero))
        guard event_add(raw, &tv) == 0 else { throw .callFailed(function: "event_add", errno: nil) }
    }
}

/// The C callback of every ``LoopTimer``: captures nothing, finds the timer through `arg`.
private func loopTimerTrampoline(_ fd: Int32, _ what: Int16, _ arg: UnsafeMutableRawPointer?) {
    guard let storage = arg else { return }
    let trailer = (storage + LoopTimer.trailerOffset).assumingMemoryBound(to: LoopTimer.Trailer.self)
    guard let due = trailer.pointee.due else { return }
    let now = ContinuousClock.now
    if now < due {
        // Early (the coarse clock): wait for the rest. If that fails (out of memory), firing now
        // beats never firing.
        if let base = event_get_base(OpaquePointer(storage)),
           (try? LoopTimer.arm(OpaquePointer(storage), base: base, for: due - now)) != nil {
            return
        }
    }
    trailer.pointee.due = nil
    // A strong reference for the length of the call; the target may drop the timer (and free
    // `storage`) inside it, so nothing below touches `storage`.
    let target = trailer.pointee.target
    let tag = trailer.pointee.tag
    target.eventFired(tag: tag, flags: .timeout)
}
