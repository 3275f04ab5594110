import Foundation
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The `token-stream` example, run as a user would: its routes, errors, streams, aborts and
/// shutdown, over real loopback sockets.
@Suite struct TokenStreamTests {
    static let json = "application/json"

    static func body(model: String = "tiny-1", prompt: String = "alpha beta gamma", maxTokens: Int? = 5,
                     stream: Bool? = nil) -> String {
        var fields = [#""model":"\#(model)""#, #""prompt":"\#(prompt)""#]
        if let maxTokens { fields.append(#""max_tokens":\#(maxTokens)"#) }
        if let stream { fields.append(#""stream":\#(stream)"#) }
        return "{" + fields.joined(separator: ",") + "}"
    }

    // MARK: - Flags

    @Test(arguments: [
        ["--token-interval", "0"], ["--token-interval", "-5ms"], ["--token-interval", "fast"],
        ["--heartbeat", "-1s"], ["--shutdown-grace", "soon"], ["--workers", "0"], ["--workers", "257"],
        ["--port", "65536"], ["--port", "-1"], ["--max-body-bytes", "0"],
    ])
    func badFlagsExit64(_ flags: [String]) throws {
        // Port 0 first: a repeated flag's last value wins, so the bad one below is the one read.
        let process = try GreetdProcess(["--port", "0"] + flags, executable: TokenStreamProcess.binary)
        #expect(try process.waitForExit() == 64, "\(flags): \(process.stderrText)")
    }

    // MARK: - Models, routing, metrics

    @Test func modelsAndRouting() throws {
        let (process, port) = try TokenStreamProcess.start(["--token-interval", "5ms"])
        let list = try exchange(port, TokenClient.get("/v1/models"))
        #expect(list.status == 200 && list.header("Content-Type") == Self.json)
        #expect(list.body == #"{"object":"list","data":[{"id":"tiny-1","object":"model","owned_by":"example"},{"id":"tiny-2","object":"model","owned_by":"example"}]}"#)
        #expect(list.header("X-Request-Id")?.isEmpty == false)

        let one = try exchange(port, TokenClient.get("/v1/models/tiny%2D1"))
        #expect(one.status == 200)
        #expect(one.body == #"{"id":"tiny-1","object":"model","owned_by":"example"}"#)
        let two = try exchange(port, TokenClient.get("/v1/models/tiny-2"))
        #expect(try jsonObject(two.body)["id"] as? String == "tiny-2")

        let unknown = try exchange(port, TokenClient.get("/v1/models/tiny-3"))
        #expect(unknown.status == 404)
        #expect(try errorType(unknown) == "not_found_error")
        let nowhere = try exchange(port, TokenClient.get("/v2/nothing"))
        #expect(nowhere.status == 404)
        #expect(try errorType(nowhere) == "not_found_error")

        let getCompletions = try exchange(port, TokenClient.get("/v1/completions"))
        #expect(getCompletions.status == 405 && getCompletions.header("Allow") == "POST")
        #expect(try errorType(getCompletions) == "invalid_request_error")
        let postModels = try exchange(port, TokenClient.post("/v1/models", json: "{}"))
        #expect(postModels.status == 405 && postModels.header("Allow") == "GET, HEAD")
        #expect(try errorType(postModels) == "invalid_request_error")

        let head = try exchange(port, TokenClient.get("/v1/models", method: "HEAD"), method: "HEAD")
        #expect(head.status == 200 && head.bodyBytes.isEmpty && head.header("X-Request-Id") != nil)

        // Every series is there from the start, at zero.
        #expect(try metric(port, "tokens_generated_total") == 0)
        for outcome in ["completed", "canceled", "shutdown"] {
            #expect(try metric(port, #"generations_total{outcome="\#(outcome)"}"#) == 0)
        }
        // The example makes its own ids.
        let named = try exchange(port, "GET /v1/models HTTP/1.1\r\nHost: t\r\nX-Request-Id: mine\r\n\r\n")
        #expect(named.header("X-Request-Id") != "mine")
        process.signal(SIGTERM)
        #expect(try process.waitForExit() == 0)
    }

    // MARK: - Errors and their order

    @Test func errorsInOrder() throws {
        let (process, port) = try TokenStreamProcess.start(["--token-interval", "5ms", "--max-body-bytes", "200"])
        func check(_ request: String, _ status: Int, _ type: String, _ note: Comment) throws {
            let reply: HTTPReply
            do {
                reply = try exchange(port, request, method: "POST")
            } catch {
                Issue.record("\(note): \(error)")
                return
            }
            #expect(reply.status == status, note)
            #expect(reply.header("Content-Type") == Self.json, note)
            #expect(try errorType(reply) == type, note)
            #expect((try jsonObject(reply.body)["error"] as? [String: Any])?["message"] is String, note)
        }
        let big = #"{"model":"nope","prompt":""# + String(repeating: "x ", count: 200) + #""}"#
        let good = Self.body()
        try check(TokenClient.post(json: good, contentType: nil), 415, "invalid_request_error", "no content type")
        try check(TokenClient.post(json: good, contentType: "text/plain"), 415, "invalid_request_error", "text/plain")
        try check(TokenClient.post(json: big, contentType: "text/plain"), 415, "invalid_request_error", "415 before 413")
        try check(TokenClient.post(json: big), 413, "invalid_request_error", "too big")
        try check(TokenClient.post(json: "{" + String(repeating: " ", count: 300)), 413, "invalid_request_error", "413 before 400")
        try check(TokenClient.post(json: "{not json"), 400, "invalid_request_error", "malformed")
        try check(TokenClient.post(json: #"{"model":"tiny-1","prompt":"   "}"#), 400, "invalid_request_error", "no word")
        try check(TokenClient.post(json: #"{"model":"tiny-1"}"#), 400, "invalid_request_error", "no prompt")
        try check(TokenClient.post(json: #"{"model":"tiny-1","prompt":null}"#), 400, "invalid_request_error", "null prompt")
        try check(TokenClient.post(json: #"{"model":"tiny-1","prompt":7}"#), 400, "invalid_request_error", "prompt typed")
        try check(TokenClient.post(json: #"{"model":"tiny-1","prompt":"a","stream":"yes"}"#), 400, "invalid_request_error", "stream typed")
        try check(TokenClient.post(json: Self.body(maxTokens: 0)), 400, "invalid_request_error", "max_tokens 0")
        try check(TokenClient.post(json: Self.body(maxTokens: 4097)), 400, "invalid_request_error", "max_tokens 4097")
        try check(TokenClient.post(json: Self.body(model: "gpt-9", maxTokens: 0)), 400, "invalid_request_error", "400 before 404")
        try check(TokenClient.post(json: Self.body(model: "gpt-9")), 404, "not_found_error", "unknown model")
        try check(TokenClient.post(json: Self.body(model: "gpt-9"), contentType: "APPLICATION/JSON; charset=utf-8"),
                  404, "not_found_error", "content type in any case, with parameters")
        process.signal(SIGTERM)
        #expect(try process.waitForExit() == 0)
    }

    // MARK: - Completions

    @Test func plainCompletion() throws {
        let (process, port) = try TokenStreamProcess.start(["--token-interval", "5ms"])
        let json = #"{"model":"tiny-2","prompt":"  one two\tthree ","max_tokens":7,"stream":null,"temperature":0.5}"#
        let reply = try exchange(port, TokenClient.post(json: json, extra: ["Last-Event-ID: 3"]), method: "POST")
        #expect(reply.status == 200 && reply.header("Content-Type") == Self.json)
        let object = try jsonObject(reply.body)
        #expect((object["id"] as? String)?.hasPrefix("cmpl-") == true)
        #expect(object["object"] as? String == "text_completion" && object["model"] as? String == "tiny-2")
        let choice = (object["choices"] as? [[String: Any]])?.first
        #expect(choice?["index"] as? Int == 0)
        #expect(choice?["text"] as? String == "one two three one two three one")
        #expect(choice?["finish_reason"] as? String == "length")
        let usage = object["usage"] as? [String: Any]
        #expect(usage?["prompt_tokens"] as? Int == 3 && usage?["completion_tokens"] as? Int == 7 && usage?["total_tokens"] as? Int == 10)
        // The default max_tokens is 16.
        let short = try exchange(port, TokenClient.post(json: #"{"model":"tiny-1","prompt":"w"}"#), method: "POST")
        #expect(((try jsonObject(short.body))["usage"] as? [String: Any])?["completion_tokens"] as? Int == 16)
        try waitForMetric(port, #"generations_total{outcome="completed"}"#, 2)
        #expect(try metric(port, "tokens_generated_total") == 23)
        process.signal(SIGTERM)
        #expect(try process.waitForExit() == 0)
    }

    @Test func streamedCompletion() throws {
        let (process, port) = try TokenStreamProcess.start(["--token-interval", "5ms"])
        let client = try TokenClient(port: port)
        try client.send(TokenClient.post(json: Self.body(maxTokens: 4, stream: true)))
        let reply = try client.response(method: "POST")
        #expect(reply.status == 200)
        #expect(reply.header("Content-Type") == "text/event-stream" && reply.header("Cache-Control") == "no-cache")
        let received = events(in: reply.body)
        #expect(received.count == 5)
        #expect(reply.body.components(separatedBy: "id: ").count - 1 == 4)
        for (k, event) in received.prefix(4).enumerated() {
            #expect(event.lastEventID == String(k))
            let object = try jsonObject(event.data)
            let choice = (object["choices"] as? [[String: Any]])?.first
            #expect(choice?["text"] as? String == ["alpha", "beta", "gamma", "alpha"][k])
            if k == 3 {
                #expect(choice?["finish_reason"] as? String == "length")
            } else {
                #expect(choice?["finish_reason"] is NSNull, "finish_reason must be an explicit null")
            }
        }
        #expect(received.last?.data == "[DONE]")
        // Keep-alive: the next request on the same connection is answered too.
        try client.send(TokenClient.get("/v1/models"))
        #expect(try client.response().status == 200)
        process.signal(SIGTERM)
        #expect(try process.waitForExit() == 0)
    }

    @Test func resumingWithLastEventID() throws {
        let (process, port) = try TokenStreamProcess.start(["--token-interval", "5ms"])
        func stream(_ lastEventID: String) throws -> String {
            try exchange(port, TokenClient.post(json: Self.body(maxTokens: 5, stream: true), extra: ["Last-Event-ID: \(lastEventID)"]),
                         method: "POST").body
        }
        let resumed = events(in: try stream("2"))
        #expect(resumed.map(\.lastEventID).prefix(2) == ["3", "4"])
        #expect(resumed.map(\.data).last == "[DONE]" && resumed.count == 3)
        let done = try stream("4")
        #expect(done == "data: [DONE]\n\n")
        #expect(try stream("99999999999999999999999") == "data: [DONE]\n\n")
        let ignored = events(in: try stream("two"))
        #expect(ignored.count == 6 && ignored.first?.lastEventID == "0")
        #expect(events(in: try stream("-1")).count == 6)
        process.signal(SIGTERM)
        #expect(try process.waitForExit() == 0)
    }

    @Test func heartbeats() throws {
        let (process, port) = try TokenStreamProcess.start(["--token-interval", "300ms", "--heartbeat", "20ms"])
        let client = try TokenClient(port: port)
        try client.send(TokenClient.post(json: Self.body(maxTokens: 1, stream: true)))
        try client.read(until: ": keep-alive\n\n")
        // The comments came before the one token (300 ms), so they flow without tokens.
        #expect(!client.text.contains("id: 0"))
        try client.read(until: "[DONE]")
        process.signal(SIGTERM)
        #expect(try process.waitForExit() == 0)
    }

    // MARK: - Clients that leave

    enum Abort: String, CaseIterable { case fin, rst }

    @Test(arguments: [(Abort.fin, true), (.rst, true), (.fin, false), (.rst, false)])
    func clientLeaves(_ abort: Abort, streamed: Bool) throws {
        let (process, port) = try TokenStreamProcess.start(["--token-interval", "10ms"])
        let client = try TokenClient(port: port)
        try client.send(TokenClient.post(json: Self.body(maxTokens: 1000, stream: streamed)))
        var requestID = ""
        if streamed {
            try client.read(until: "id: 2\n")
            let head = client.text.components(separatedBy: "\r\n\r\n")[0]
            requestID = head.components(separatedBy: "\r\n").first { $0.lowercased().hasPrefix("x-request-id:") }
                .map { String($0.dropFirst("x-request-id:".count)).trimmingCharacters(in: .whitespaces) } ?? "?"
        } else {
            // Wait for tokens to be generated (the counter moves per token).
            let deadline = Date().addingTimeInterval(10)
            while (try metric(port, "tokens_generated_total") ?? 0) < 3 && Date() < deadline { Thread.sleep(forTimeInterval: 0.005) }
        }
        abort == .rst ? client.reset() : client.close()
        let line = try process.waitForLine(containing: "generation canceled")
        #expect(line.text.contains("/1000"))
        if streamed { #expect(line.text.contains(requestID), "\(line.text) lacks \(requestID)") }
        let generated = line.text.split(separator: " ").first { $0.hasPrefix("tokens=") }
            .flatMap { Int($0.dropFirst("tokens=".count).split(separator: "/")[0]) }
        #expect((3..<1000).contains(generated ?? -1), "\(line.text)")
        try waitForMetric(port, #"generations_total{outcome="canceled"}"#, 1)
        // No further token once the client is gone.
        let tokens = try metric(port, "tokens_generated_total")
        #expect(tokens == Double(generated ?? -1))
        process.signal(SIGTERM)
        #expect(try process.waitForExit() == 0)
    }

    @Test func aStormOfStreamsHalfAbandoned() throws {
        let (process, port) = try TokenStreamProcess.start(["--token-interval", "5ms", "--workers", "4"])
        var clients: [TokenClient] = []
        for _ in 0..<200 {
            let client = try TokenClient(port: port)
            try client.send(TokenClient.post(json: Self.body(maxTokens: 20, stream: true)))
            clients.append(client)
        }
        for (index, client) in clients.enumerated() {
            if index % 2 == 0 {
                try client.read(until: "id: 0\n")
                index % 4 == 0 ? client.reset() : client.close()
            }
        }
        for (index, client) in clients.enumerated() where index % 2 == 1 {
            try client.read(until: "data: [DONE]")
        }
        try waitForMetric(port, #"generations_total{outcome="completed"}"#, 100, timeout: 20)
        try waitForMetric(port, #"generations_total{outcome="canceled"}"#, 100, timeout: 20)
        try process.waitForLines(containing: "generation canceled", count: 100)
        process.signal(SIGTERM)
        #expect(try process.waitForExit() == 0)
    }

    // MARK: - Shutdown

    @Test func sigtermLetsInFlightWorkFinish() throws {
        let (process, port) = try TokenStreamProcess.start(["--token-interval", "20ms", "--shutdown-grace", "20s"])
        let stream = try TokenClient(port: port)
        try stream.send(TokenClient.post(json: Self.body(maxTokens: 40, stream: true)))
        let plain = try TokenClient(port: port)
        try plain.send(TokenClient.post(json: Self.body(maxTokens: 40)))
        try stream.read(until: "id: 1\n")
        process.signal(SIGTERM)
        // New connections are refused once the drain began.
        let deadline = Date().addingTimeInterval(10)
        while connectErrno(port: port) == nil && Date() < deadline { Thread.sleep(forTimeInterval: 0.005) }
        #expect(connectErrno(port: port) != nil)
        // A new request on the kept-alive connection (pipelined behind the stream) gets 503 and
        // Connection: close, after the stream, which finishes.
        try stream.send(TokenClient.get("/v1/models"))
        let streamed = try stream.response(method: "POST")
        #expect(streamed.status == 200 && events(in: streamed.body).last?.data == "[DONE]")
        #expect(events(in: streamed.body).count == 41)
        let refused = try stream.response()
        #expect(refused.status == 503 && refused.header("Connection")?.lowercased() == "close")
        #expect(try errorType(refused) == "server_error")
        let answer = try plain.response(method: "POST")
        #expect(answer.status == 200)
        #expect(try process.waitForExit(timeout: 15) == 0)
    }

    @Test func pastTheGraceStreamsEndWithAnErrorEvent() throws {
        let (process, port) = try TokenStreamProcess.start(["--token-interval", "20ms", "--shutdown-grace", "150ms"])
        let stream = try TokenClient(port: port)
        try stream.send(TokenClient.post(json: Self.body(maxTokens: 4000, stream: true)))
        let plain = try TokenClient(port: port)
        try plain.send(TokenClient.post(json: Self.body(maxTokens: 4000)))
        try stream.read(until: "id: 1\n")
        process.signal(SIGTERM)
        try stream.read(until: "server shutting down")
        try stream.readToEnd()
        let body = try stream.response(method: "POST").body
        let last = body.components(separatedBy: "\n\n").filter { !$0.isEmpty }.last ?? ""
        #expect(last.hasSuffix(#"data: {"error":{"message":"server shutting down","type":"server_error"}}"#) && !last.contains("id:"))
        #expect(!body.contains("[DONE]"))
        let answer = try plain.response(method: "POST")
        #expect(answer.status == 503)
        #expect(answer.body == #"{"error":{"message":"server shutting down","type":"server_error"}}"#)
        #expect(try process.waitForExit() == 0)
    }

    @Test func aSecondSignalCancelsAtOnce() throws {
        let (process, port) = try TokenStreamProcess.start(["--token-interval", "20ms", "--shutdown-grace", "60s"])
        let stream = try TokenClient(port: port)
        try stream.send(TokenClient.post(json: Self.body(maxTokens: 4000, stream: true)))
        try stream.read(until: "id: 1\n")
        process.signal(SIGTERM)
        let deadline = Date().addingTimeInterval(10)
        while connectErrno(port: port) == nil && Date() < deadline { Thread.sleep(forTimeInterval: 0.005) }
        process.signal(SIGINT)
        try stream.read(until: "server shutting down")
        #expect(try process.waitForExit(timeout: 10) == 0)
    }
}
