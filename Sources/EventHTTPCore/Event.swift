import CLibevent
import EventHTTPDuration

/// The conditions an ``Event`` waits for and reports (`EV_*`).
public struct EventFlags: OptionSet, Sendable, CustomStringConvertible {
    /// The `EV_*` bits, as libevent's `short`.
    public let rawValue: Int16
    /// Flags from `EV_*` bits.
    public init(rawValue: Int16) { self.rawValue = rawValue }

    /// `EV_TIMEOUT`: the timeout passed to ``Event/add(timeout:)`` elapsed.
    public static let timeout = EventFlags(rawValue: Int16(EV_TIMEOUT))
    /// `EV_READ`: the descriptor is readable (data, end of stream, or an error).
    public static let read = EventFlags(rawValue: Int16(EV_READ))
    /// `EV_WRITE`: the descriptor is writable.
    public static let write = EventFlags(rawValue: Int16(EV_WRITE))
    /// `EV_SIGNAL`: the event watches a signal number instead of a descriptor.
    public static let signal = EventFlags(rawValue: Int16(EV_SIGNAL))
    /// `EV_PERSIST`: the event stays pending after it fires; timers repeat.
    public static let persist = EventFlags(rawValue: Int16(EV_PERSIST))
    /// `EV_CLOSED`: the peer closed its side. Only on backends with early-close support.
    public static let closed = EventFlags(rawValue: Int16(EV_CLOSED))

    /// The set flags' names joined by `|`, e.g. `read|closed`.
    public var description: String {
        let names: [(EventFlags, String)] = [(.timeout, "timeout"), (.read, "read"), (.write, "write"),
                                              (.signal, "signal"), (.persist, "persist"), (.closed, "closed")]
        return names.filter { contains($0.0) }.map(\.1).joined(separator: "|")
    }
}

/// An object that handles several events itself, told apart by a tag: cheaper than a closure
/// per event (no capture context to allocate), for objects that live in thousands.
public protocol EventTarget: AnyObject {
    /// Called on the loop thread when the event with `tag` fires.
    func eventFired(tag: Int, flags: EventFlags)
}

/// One libevent event: a timer, a descriptor watch, or a signal watch.
///
/// Ownership: the `Event` object *is* the `struct event`'s storage. It allocates
/// `event_get_struct_event_size()` bytes, `event_assign`s them once with an *unretained* pointer
/// to itself as the callback argument, and in `deinit` takes the event off the loop (`event_del`)
/// before freeing the bytes. The C event can never outlive the Swift object, so there is no
/// retain to balance and no moment at which the callback argument is wrong.
/// The event keeps its base alive. Dropping the last reference is how an event is cancelled for
/// good; ``remove()`` only pauses it. It is safe to drop an event from inside its own handler.
///
/// Threading: loop-confined to its ``EventBase``.
public final class Event {
    /// Called on the loop thread with the conditions that fired.
    public typealias Handler = (EventFlags) -> Void

    private enum Callee {
        case closure(Handler)
        /// Unowned: the target owns the event, so it outlives it.
        case target(UnownedTarget, tag: Int)
    }

    struct UnownedTarget {
        unowned let value: any EventTarget
    }

    /// The `struct event`, owned: allocated in `init`, freed in `deinit`.
    private let storage: UnsafeMutableRawPointer
    /// Whether `event_assign` succeeded, so that `deinit` knows there is an event to delete.
    private var isAssigned = false
    private let callee: Callee
    /// Strong: the base must outlive its events (see ``EventBase``).
    let base: EventBase

    /// Bytes in a `struct event`, asked of the libevent actually loaded rather than its headers.
    private static let structSize = event_get_struct_event_size()

    private var raw: OpaquePointer { OpaquePointer(storage) }

    /// Creates an event that is not yet pending. Call ``add(timeout:)`` to arm it.
    /// - Parameters:
    ///   - fd: the descriptor to watch (or signal number, with `.signal`), or `-1` for a pure timer.
    ///   - flags: what to wait for; `[]` or `.persist` alone make a timer.
    /// - Throws: `callFailed(function: "event_assign", errno: nil)` for flags libevent refuses
    ///   (`.signal` with `.read`, `.write` or `.closed`).
    public convenience init(base: EventBase, fd: Int32 = -1, flags: EventFlags = [], handler: @escaping Handler) throws(LibeventError) {
        try self.init(base: base, fd: fd, flags: flags, callee: .closure(handler))
    }

    /// Creates an event that calls `target.eventFired(tag:flags:)`. The target must own the
    /// event (it is held unowned).
    public convenience init(base: EventBase, fd: Int32 = -1, flags: EventFlags = [], target: any EventTarget, tag: Int) throws(LibeventError) {
        try self.init(base: base, fd: fd, flags: flags, callee: .target(UnownedTarget(value: target), tag: tag))
    }

    private init(base: EventBase, fd: Int32, flags: EventFlags, callee: Callee) throws(LibeventError) {
        base.thread.preconditionOnThread()
        self.base = base
        self.callee = callee
        storage = .allocate(byteCount: Self.structSize, alignment: 16)
        let arg = Unmanaged.passUnretained(self).toOpaque()
        // event_assign fails (-1, errno untouched) only for invalid flag combinations. After a
        // throw here `deinit` runs, sees `isAssigned == false`, and only frees the bytes.
        guard event_assign(raw, base.raw, fd, flags.rawValue, eventTrampoline, arg) == 0 else {
            throw .callFailed(function: "event_assign", errno: nil)
        }
        isAssigned = true
        base.counters.liveEvents.bump()
    }

    deinit {
        base.thread.preconditionOnThread()
        if isAssigned {
            // event_del fails only for an event with no base, which an assigned one always has.
            _ = event_del(raw)
            // Tells libevent's debug mode (event_enable_debug_mode) that the bytes are going away;
            // a no-op otherwise.
            event_debug_unassign(raw)
            base.counters.liveEvents.bump(-1)
        }
        storage.deallocate()
    }

    /// Arms the event. With a timeout, it fires after that long; a persistent timer repeats.
    public func add(timeout: Duration? = nil) throws(LibeventError) {
        base.thread.preconditionOnThread()
        if var tv = timeout.map(timeval.init(duration:)) {
            try check(event_add(raw, &tv), "event_add")
        } else {
            try check(event_add(raw, nil), "event_add")
        }
    }

    /// Disarms the event; it can be armed again. Safe to call when it is not pending.
    public func remove() {
        base.thread.preconditionOnThread()
        // event_del fails only for an event with no base, which this one always has.
        _ = event_del(raw)
    }

    /// Makes the event fire on the next turn of the loop, as if `flags` had happened
    /// (`event_active`). Works whether or not the event is armed.
    public func activate(_ flags: EventFlags = .timeout) {
        base.thread.preconditionOnThread()
        event_active(raw, Int32(flags.rawValue), 0)
    }

    /// Whether the event is armed for any of its conditions or a timeout.
    public var isPending: Bool {
        event_pending(raw, Int16(EV_TIMEOUT | EV_READ | EV_WRITE | EV_SIGNAL | EV_CLOSED), nil) != 0
    }

    fileprivate func fire(_ flags: EventFlags) {
        switch callee {
        case .closure(let handler): handler(flags)
        case .target(let target, let tag): target.value.eventFired(tag: tag, flags: flags)
        }
    }
}

/// The C callback for every ``Event``: captures nothing, finds the object through `arg`.
private func eventTrampoline(_ fd: Int32, _ what: Int16, _ arg: UnsafeMutableRawPointer?) {
    // takeUnretainedValue gives a strong reference for the length of the call, so the handler
    // may drop the last other reference to the event (and free it) without pulling it from under us.
    let event = Unmanaged<Event>.fromOpaque(arg!).takeUnretainedValue()
    event.fire(EventFlags(rawValue: what))
}

extension timeval {
    /// The `timeval` for a timer due after `duration`: rounded up to the microsecond, so that it
    /// never fires early; a negative duration means "now" (a negative `tv_usec` makes libevent
    /// abort on a persistent event). The rounding is GreetdRules' `Duration.timerInterval`.
    init(duration: Duration) {
        let interval = duration.timerInterval
        self.init(tv_sec: .init(interval.seconds), tv_usec: .init(interval.microseconds))
    }
}
