import EventHTTPSystem
@testable import EventHTTPCore
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The backend libevent picks when it may not use `avoided`, given the environment: the README
/// documents `EVENT_NOEPOLL=1 EVENT_NOPOLL=1`, and the whole suite must pass under it too.
private func expectedLinuxBackend(avoiding avoided: Set<String> = []) -> String {
    let skipped = avoided.union(["epoll", "poll"].filter { getenv("EVENT_NO\($0.uppercased())") != nil })
    return ["epoll", "poll", "select"].first { !skipped.contains($0) }!
}

@Suite("EventBase")
struct EventBaseTests {
    @Test func methodIsNamed() throws {
        try withBase { base in
            #expect(!base.method.isEmpty)
        }
    }

    @Test func avoidingEpollAndPollGivesSelectWithoutEarlyClose() throws {
        try withBase(avoiding: ["epoll", "poll"]) { base in
            #expect(base.method == "select")
            #expect(!base.supportsEarlyClose)
        }
    }

    #if os(Linux)
    /// epoll with early close, unless the environment rules it out (then poll, then select).
    @Test func defaultBackendOnLinuxIsEpollWithEarlyClose() throws {
        try withBase { base in
            #expect(base.method == expectedLinuxBackend())
            #expect(base.supportsEarlyClose == (base.method != "select"))
            #expect(base.usesChangelist == (base.method == "epoll"), "EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST")
        }
    }

    /// The documentation of `supportsEarlyClose` says poll on Linux reports `EV_CLOSED` too.
    @Test func pollOnLinuxSupportsEarlyClose() throws {
        try withBase(avoiding: ["epoll"]) { base in
            #expect(base.method == expectedLinuxBackend(avoiding: ["epoll"]))
            #expect(base.supportsEarlyClose == (base.method == "poll"))
        }
    }
    #endif

    @Test func avoidingEveryBackendThrowsAllocationFailed() {
        // libevent also logs "[warn] event_base_new_with_config: no event mechanism available".
        #expect(throws: LibeventError.allocationFailed(function: "event_base_new_with_config")) {
            _ = try EventBase(avoiding: ["epoll", "poll", "select"])
        }
    }

    /// The slots are made on every backend, and leave nothing behind: no event pending (the
    /// loop returns at once), and a descriptor in the range works as before.
    @Test("reserveDescriptorSlots makes a slot per number and leaves the loop as it was",
          arguments: [[], ["epoll"], ["epoll", "poll"]])
    func reserveDescriptorSlots(avoiding: [String]) throws {
        try withBase(avoiding: avoiding) { base in
            #expect(base.reserveDescriptorSlots(upTo: 0) == 0)
            #expect(base.reserveDescriptorSlots(upTo: 512) == 512)
            // select: up to FD_SETSIZE only (glibc aborts past it); the others: every number.
            #expect(base.reserveDescriptorSlots(upTo: 5_000) == (base.method == "select" ? Int(FD_SETSIZE) : 5_000))
            try base.run()  // nothing pending: returns at once
            var fds: [Int32] = [0, 0]
            #expect(pipe(&fds) == 0)
            defer { close(fds[0]); close(fds[1]) }
            #expect(fds[0] < 512)
            var fired = 0
            var event: Event? = try Event(base: base, fd: fds[0], flags: .read) { _ in fired += 1 }
            try event?.add()
            #expect(write(fds[1], "x", 1) == 1)
            try base.run()
            #expect(fired == 1)
            event = nil
            withExtendedLifetime(event) {}
        }
    }

    @Test func liveEventsCountsEventObjects() throws {
        try withBase { base in
            let live = { base.counters.liveEvents.load(ordering: .relaxed) }
            #expect(live() == 0)
            var first: Event? = try Event(base: base) { _ in }
            var second: Event? = try Event(base: base, flags: .persist) { _ in }
            #expect(live() == 2)
            // A pending event counts the same as an idle one.
            try second?.add(timeout: .seconds(60))
            #expect(live() == 2)
            first = nil
            #expect(live() == 1)
            second = nil
            #expect(live() == 0)
            withExtendedLifetime((first, second)) {}
        }
    }

    @Test func countersCanBeShared() throws {
        let counters = LibeventCounters()
        let base = try EventBase(counters: counters)
        do {
            let event = try Event(base: base) { _ in }
            #expect(counters.liveEvents.load(ordering: .relaxed) == 1)
            withExtendedLifetime(event) {}
        }
        #expect(counters.liveEvents.load(ordering: .relaxed) == 0)
        #expect(counters.liveRequests.load(ordering: .relaxed) == 0)
        #expect(counters.liveConnections.load(ordering: .relaxed) == 0)
        withExtendedLifetime(base) {}
    }

    @Test func baseRecordsItsThread() throws {
        try withBase { base in
            #expect(base.thread.isCurrent)
            #expect(base.thread == LoopThread.current)
        }
    }

    @Test func nowIsAPlausibleWallClockTime() throws {
        try withBase { base in
            // After 2020-01-01, whether or not the loop has cached a time yet.
            #expect(base.now.tv_sec > 1_577_836_800)
        }
    }

    /// An event that was made but never added does not keep the loop running, and does not fire;
    /// the base still works after `run()` returns.
    @Test func runWithNoPendingEventsReturnsAtOnce() throws {
        try withBase { base in
            var fired: [String] = []
            do {
                let idle = try Event(base: base) { _ in fired.append("idle") }
                try base.run()
                #expect(fired.isEmpty)
                #expect(!idle.isPending)
                let timer = try Event(base: base) { _ in fired.append("timer") }
                try timer.add(timeout: .zero)
                try base.run()
            }
            #expect(fired == ["timer"])
        }
    }

    /// libevent refuses a signal event that also waits for I/O; the failed event is not counted
    /// as live (and its storage is freed: valgrind and the base's leak assertion would say).
    @Test func invalidFlagsThrowAndLeaveNothingAlive() throws {
        try withBase { base in
            #expect(throws: LibeventError.callFailed(function: "event_assign", errno: nil)) {
                _ = try Event(base: base, fd: SIGUSR2, flags: [.signal, .read]) { _ in }
            }
            #expect(base.counters.liveEvents.load(ordering: .relaxed) == 0)
        }
    }
}
