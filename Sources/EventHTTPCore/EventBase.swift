import CLibevent
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An event loop: the owner of one `struct event_base`.
///
/// Ownership: the `EventBase` object owns its `event_base` and frees it in `deinit`. Every
/// ``Event`` and ``LoopHTTPServer`` created on it holds it strongly, so it cannot go before them
/// (an optimised build may end a local's lifetime at its last use; an `unowned` back-reference
/// then dangles in the events' `deinit`). In debug builds a base freed with live events is an
/// assertion failure.
///
/// Threading: loop-confined. Create it on the thread that will run ``run()``, and use it and
/// everything created from it only there. The one way in from another thread is ``LoopWakeup``.
///
/// The backend is picked by libevent. `EVENT_NOEPOLL=1 EVENT_NOPOLL=1` in the environment is
/// honoured (we never set `EVENT_BASE_FLAG_IGNORE_ENV`), and ``init(avoiding:)`` does the same
/// for one base without touching the environment.
///
/// ## The epoll changelist
/// Every base is created with `EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST`: under epoll, the
/// additions and removals made during a loop turn are merged per descriptor and applied with
/// one `epoll_ctl` each just before the loop sleeps, instead of one call per change (a
/// keep-alive request goes from 4 `epoll_ctl` to 2). libevent warns that it is unsafe only for
/// descriptors cloned with `dup()` (two numbers sharing one open file, so that a deferred
/// change lands on the wrong one): greetd never duplicates a descriptor it watches (sockets come
/// from `accept4`, the wake-up pipe from `pipe2`). The flag does nothing under poll and select.
/// The abort watch (`HTTPConnection`) is tested under it with every abort style and pipelined
/// bytes, on every backend.
public final class EventBase {
    let raw: OpaquePointer
    /// The thread this base belongs to.
    public let thread: LoopThread
    /// Live-handle counts for leak checks, shareable with other threads.
    public let counters: LibeventCounters

    /// Creates a base on the calling thread.
    /// - Parameters:
    ///   - methods: backends to skip, e.g. `["epoll", "poll"]` to get `select`.
    ///   - counters: where to count live handles. One set per base: `deinit` checks that this
    ///     base's events are all gone by reading it.
    public init(avoiding methods: [String] = [], counters: LibeventCounters = LibeventCounters()) throws(LibeventError) {
        let config = try nonNull(event_config_new(), "event_config_new")
        defer { event_config_free(config) }
        for method in methods {
            // Fails (-1) only when it cannot copy the name (ENOMEM).
            try check(event_config_avoid_method(config, method), "event_config_avoid_method")
        }
        // Fails only for an unknown flag, which this one is not.
        try check(event_config_set_flag(config, Int32(EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST.rawValue)), "event_config_set_flag")
        raw = try nonNull(event_base_new_with_config(config), "event_base_new_with_config")
        thread = .current
        self.counters = counters
    }

    deinit {
        thread.preconditionOnThread()
        assert(counters.liveEvents.load(ordering: .relaxed) == 0, "EventBase freed while events are alive")
        event_base_free(raw)
    }

    /// The backend libevent chose: `epoll`, `poll`, `select`, `kqueue`, ... (without the
    /// ` (with changelist)` libevent appends for epoll: see ``usesChangelist``).
    public var method: String {
        let name = String(cString: event_base_get_method(raw))
        return name.firstIndex(of: " ").map { String(name[..<$0]) } ?? name
    }

    /// Whether the backend batches descriptor changes per loop turn (epoll with
    /// `EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST`, which every base asks for; see the type's docs).
    public var usesChangelist: Bool {
        String(cString: event_base_get_method(raw)).hasSuffix("(with changelist)")
    }

    /// Whether the backend reports a peer's close as `EV_CLOSED` (`EV_FEATURE_EARLY_CLOSE`):
    /// epoll, and poll on Linux.
    public var supportsEarlyClose: Bool {
        event_base_get_features(raw) & Int32(EV_FEATURE_EARLY_CLOSE.rawValue) != 0
    }

    /// Has libevent set up its per-descriptor bookkeeping now for descriptors `0..<count`
    /// (`evmap_io`: a pointer per descriptor plus a small slot, about 50 B, kept for the base's
    /// life).
    ///
    /// libevent allocates a descriptor's slot the first time an event uses that number, in the
    /// middle of whatever the loop allocates then (a new connection's objects). After a burst
    /// of connections, those small long-lived slots sit among the pages the connections freed,
    /// one every few kilobytes, and keep every one of those pages resident: the process's
    /// memory does not come back down. Made at once, up front, they sit together.
    ///
    /// Each slot is made by adding a read event on the number and deleting it at once: with
    /// the epoll changelist (every base's) and under poll, the two cancel out without a
    /// system call; under select nothing is allocated beyond the fd sets, and only numbers below
    /// `FD_SETSIZE` are reserved (glibc aborts on an `fd_set` bit past it). A daemon calls this
    /// before it listens, with the most descriptors it expects (its connection limit plus its
    /// own); an application that never sees bursts need not.
    /// - Returns: the number of slots made (numbers whose event could not be added are skipped).
    @discardableResult
    public func reserveDescriptorSlots(upTo count: Int) -> Int {
        thread.preconditionOnThread()
        let count = method == "select" ? min(count, Int(FD_SETSIZE)) : count
        guard count > 0, let storage = malloc(event_get_struct_event_size()) else { return 0 }
        defer { free(storage) }
        let event = OpaquePointer(storage)
        var made = 0
        for fd in 0..<Int32(clamping: count) {
            // Fails only for an invalid flag combination, which this is not.
            guard event_assign(event, raw, fd, Int16(EV_READ), { _, _, _ in }, nil) == 0 else { continue }
            if event_add(event, nil) == 0 {
                made += 1
                // Deletes what was just added: always succeeds.
                _ = event_del(event)
            }
        }
        return made
    }

    /// Runs the loop until ``exit()`` or until no event is left.
    public func run() throws(LibeventError) {
        thread.preconditionOnThread()
        try check(event_base_dispatch(raw), "event_base_dispatch")
    }

    /// Makes ``run()`` return after the callbacks now running finish (`event_base_loopexit`).
    public func exit() {
        thread.preconditionOnThread()
        // event_base_loopexit fails only when it cannot allocate its one-shot timer (ENOMEM).
        let result = event_base_loopexit(raw, nil)
        assert(result == 0, "event_base_loopexit failed")
    }

    /// Refreshes the loop's cached clock (`event_base_update_cache_time`). Timers added from a
    /// callback count from the time cached when the loop turn began, which can be milliseconds
    /// old after a burst of work; refresh first when a timer must count from *now*.
    public func updateCachedTime() {
        thread.preconditionOnThread()
        // Fails only for a NULL base; `raw` never is.
        _ = event_base_update_cache_time(raw)
    }

    /// The loop's cached time (`event_base_gettimeofday_cached`), as seconds since 1970.
    var now: timeval {
        var tv = timeval()
        // Fails only for a NULL base; with no cached time yet it reads the clock itself.
        _ = event_base_gettimeofday_cached(raw, &tv)
        return tv
    }
}
