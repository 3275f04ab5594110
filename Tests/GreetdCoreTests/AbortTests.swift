import GreetdClient
import GreetdCore
import Testing
import TestSupport

extension LiveServer {
    /// A client that goes away stops the work at once, however it goes, on every backend.
    @Suite("Client aborts")
    struct AbortTests {
        @Test("an abort cancels the greeting: context error, no tick after it, nothing left",
              arguments: ClientAbort.allCases, Backend.allCases)
        func abort(style: ClientAbort, backend: Backend) async throws {
            let harness = try Harness(delay: "30s", tick: "10ms", backend: backend)
            let client = try harness.connect()
            try client.sendGet("/")
            let id = try await harness.startedRequestID()
            try await harness.logs.waitFor(thinking, request: id)
            client.abort(style)
            try await harness.logs.waitFor(contextCanceled, request: id)
            try await harness.expectNothingLeft(connectionsClosed: true)
            #expect(harness.stats.canceled.load(ordering: .relaxed) == 1)
            #expect(harness.stats.completed.load(ordering: .relaxed) == 0)
            try await harness.loopRunsTimers(forMilliseconds: 50)  // five more ticks' worth
            harness.expectNoTickAfterCancel(id)
            if style == .half { #expect(await client.waitForClose(), "server closes a half-closed connection") }
        }

        @Test("bytes sent while a request is pending are neither an abort nor a crash; a later abort is",
              arguments: ClientAbort.allCases, Backend.allCases)
        func bytesWhilePending(style: ClientAbort, backend: Backend) async throws {
            let harness = try Harness(delay: "30s", tick: "10ms", backend: backend)
            let client = try harness.connect()
            try client.sendGet("/")
            let id = try await harness.startedRequestID()
            try client.send("GET /?delay=0s HTTP/1.1\r\nHost: t\r\nX-Partial: yes")  // a pipelined, unfinished request
            try await harness.barrier()  // the worker has read the partial request
            #expect(harness.stats.inFlight.load(ordering: .relaxed) == 1)
            #expect(harness.logs.count(contextCanceled) == 0)
            client.abort(style)
            try await harness.logs.waitFor(contextCanceled, request: id)
            try await harness.expectNothingLeft(connectionsClosed: true)
            harness.expectNoTickAfterCancel(id)
        }

        @Test("a pipelined request behind a pending one waits its turn and is then served",
              arguments: Backend.allCases)
        func pipelinedBehindPending(backend: Backend) async throws {
            let harness = try Harness(delay: "80ms", tick: "10ms", backend: backend)
            let client = try harness.connect()
            try client.sendGet("/")
            _ = try await harness.startedRequestID()
            try client.sendGet("/?delay=0s")
            let first = try await client.readResponse()
            let second = try await client.readResponse()
            #expect(first.status == 200 && second.status == 200)
            #expect(first.headers["x-request-id"]?.hasSuffix("-1") == true && second.headers["x-request-id"]?.hasSuffix("-2") == true)
            #expect(harness.logs.count(contextCanceled) == 0)
            try await harness.expectNothingLeft()
        }

        @Test("a client that floods bytes behind a pending request is dropped at the pipeline limit")
        func pipelineLimit() async throws {
            let harness = try Harness(delay: "30s", tick: "10ms") { $0.http.pipelineLimit = 4096 }
            let client = try harness.connect()
            try client.sendGet("/")
            let id = try await harness.startedRequestID()
            try? client.send([UInt8](repeating: UInt8(ascii: "x"), count: 64 * 1024))
            // The server's drop, not the client's abort: the context's cause says which.
            try await harness.logs.waitFor("\(contextCanceled) (cause: pipeline limit)", request: id)
            try await harness.expectNothingLeft(connectionsClosed: true)
        }

        @Test("500 concurrent greetings aborted at random times: one cancellation each, nothing left, still serving")
        func concurrentAborts() async throws {
            try raiseOpenFileLimit()
            let count = 500
            let harness = try Harness(delay: "60s", tick: "50ms")
            var clients: [LoopbackConnection] = []
            for _ in 0..<count {
                let client = try harness.connect()
                client.moveAboveSelectRange()
                try client.sendGet("/")
                clients.append(client)
            }
            try await eventually(timeout: .seconds(20), "all \(count) greetings thinking") {
                harness.stats.inFlight.load(ordering: .relaxed) == count
            }
            // Abort in a random order at random moments over ~300 ms, mixing FIN, RST and half-close.
            // The sleeps only spread the aborts over time; nothing waits on them to happen first.
            var generator = SystemRandomNumberGenerator()
            let schedule = clients.shuffled(using: &generator)
            for client in schedule {
                client.abort(ClientAbort.allCases.randomElement(using: &generator)!)
                if Int.random(in: 0..<10, using: &generator) == 0 {
                    try await Task.sleep(for: .milliseconds(Int.random(in: 1...6, using: &generator)))
                }
            }
            try await eventually(timeout: .seconds(20), "all \(count) cancelled") {
                harness.stats.canceled.load(ordering: .relaxed) == count
            }
            try await harness.expectNothingLeft(connectionsClosed: true)
            let started = harness.logs.requestIDs(logging: "Handling greeting request")
            #expect(started.count == count)
            #expect(harness.stats.completed.load(ordering: .relaxed) == 0)
            clients.removeAll()

            // Still serving, and two more ticks' worth of loop time pass with no tick after a cancel.
            try await harness.loopRunsTimers(forMilliseconds: 120)
            #expect(harness.logs.count(contextCanceled) == count)
            for id in started { harness.expectNoTickAfterCancel(id) }
        }
    }
}
