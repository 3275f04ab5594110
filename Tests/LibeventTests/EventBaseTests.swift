import Libevent
import Testing

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
    @Test func defaultBackendOnLinuxIsEpollWithEarlyClose() throws {
        try withBase { base in
            #expect(base.method == "epoll")
            #expect(base.supportsEarlyClose)
        }
    }

    /// The documentation of `supportsEarlyClose` says poll on Linux reports `EV_CLOSED` too.
    @Test func pollOnLinuxSupportsEarlyClose() throws {
        try withBase(avoiding: ["epoll"]) { base in
            #expect(base.method == "poll")
            #expect(base.supportsEarlyClose)
        }
    }
    #endif

    @Test func avoidingEveryBackendThrowsAllocationFailed() {
        // libevent also logs "[warn] event_base_new_with_config: no event mechanism available".
        #expect(throws: LibeventError.allocationFailed(function: "event_base_new_with_config")) {
            _ = try EventBase(avoiding: ["epoll", "poll", "select"])
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

    @Test func runWithNoEventsReturnsAtOnce() throws {
        try withBase { base in
            try base.run()
        }
    }
}
