import EventHTTP
import Logging
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The routes: the model list, one model, and completions (whole or streamed).
struct Generator: Sendable {
    /// What the flags decide.
    struct Settings: Sendable {
        /// What one token costs.
        var tokenInterval: Duration
        /// Interval between `: keep-alive` comments on a stream; zero for none.
        var heartbeat: Duration
        /// Largest request body.
        var maxBodyBytes: Int
    }

    /// The models served, in list order.
    static let models = [Model(id: "tiny-1"), Model(id: "tiny-2")]

    let settings: Settings
    let metrics: GenerationMetrics

    func register(on router: Router) {
        let v1 = router.group("/v1")
        v1.get("/models") { _, _ in ModelList(data: Self.models) }
        v1.get("/models/{id}") { _, context in
            // The router hands the capture over percent-decoded: `tiny%2D1` is `tiny-1`.
            let id = try context.parameters.require("id")
            guard let model = Self.models.first(where: { $0.id == id }) else {
                throw OpenAIError.notFound("The model '\(id)' does not exist")
            }
            return model
        }
        v1.post("/completions") { request, context in
            try await complete(request, context)
        }
    }

    // MARK: - Completions

    private func complete(_ request: Request, _ context: RequestContext) async throws -> Response {
        let completion = try CompletionRequest.validated(request, maxBodyBytes: settings.maxBodyBytes)
        guard let model = Self.models.first(where: { $0.id == completion.model }) else {
            throw OpenAIError.notFound("The model '\(completion.model)' does not exist")
        }
        let words = completion.prompt.split(whereSeparator: \.isWhitespace).map(String.init)
        let job = Job(id: "cmpl-\(context.requestID)", model: model.id, created: Int(Date().timeIntervalSince1970),
                      words: words, maxTokens: completion.maxTokens)
        if completion.stream {
            return stream(job, from: Self.resumePoint(request.lastEventID), context)
        }
        return try await whole(job, context)
    }

    /// One generation's fixed facts.
    struct Job: Sendable {
        let id: String
        let model: String
        let created: Int
        let words: [String]
        let maxTokens: Int

        /// Token `k`: word `k mod n` of the prompt.
        func token(_ k: Int) -> String { words[k % words.count] }
    }

    /// Generates every token, then answers them in one body.
    private func whole(_ job: Job, _ context: RequestContext) async throws -> Response {
        var tokens: [String] = []
        tokens.reserveCapacity(job.maxTokens)
        do {
            for k in 0..<job.maxTokens {
                try await context.executor.sleep(for: settings.tokenInterval)
                tokens.append(job.token(k))
                metrics.tokens.increment()
            }
        } catch {
            throw interrupted(error, generated: tokens.count, job, context)
        }
        metrics.completed.increment()
        let body = Completion(
            id: job.id, created: job.created, model: job.model,
            choices: [Choice(text: tokens.joined(separator: " "), finishReason: "length")],
            usage: Usage(promptTokens: job.words.count, completionTokens: job.maxTokens)
        )
        return try Response.json(body, encoder: Self.encoder)
    }

    /// Sends each token as an event as soon as it exists, from token `start` on.
    private func stream(_ job: Job, from start: Int, _ context: RequestContext) -> Response {
        let heartbeat = settings.heartbeat > .zero ? settings.heartbeat : nil
        return Response.eventStream(heartbeat: heartbeat) { sse in
            var generated = 0
            do {
                var k = start
                while k < job.maxTokens {
                    try await context.executor.sleep(for: settings.tokenInterval)
                    generated += 1
                    metrics.tokens.increment()
                    let finish: String? = k == job.maxTokens - 1 ? "length" : nil
                    let chunk = Completion(id: job.id, created: job.created, model: job.model,
                                           choices: [Choice(text: job.token(k), finishReason: finish)], usage: nil)
                    try await sse.send(ServerSentEvent(id: String(k), data: try Self.json(chunk)))
                    k += 1
                }
            } catch {
                let ending = interrupted(error, generated: generated, job, context)
                if let answer = ending as? HTTPError {
                    // The head went out long ago: the shutdown's error is the stream's last
                    // event (no id, no [DONE] after it), then the stream ends.
                    let body = OpenAIError.body(message: answer.body, type: answer.kind ?? "server_error")
                    try? await sse.send(ServerSentEvent(data: body))
                }
                return
            }
            try await sse.send(ServerSentEvent(data: "[DONE]"))
            metrics.completed.increment()
        }
    }

    /// Accounts for a generation that stopped early, and says what to answer: a shutdown's
    /// `503` (an ``HTTPError``), or the cancellation itself when nobody is there to answer.
    private func interrupted(_ error: any Error, generated: Int, _ job: Job, _ context: RequestContext) -> any Error {
        switch context.cancellationReason {
        case .clientGone(let end)?:
            metrics.canceled.increment()
            context.logger.info("generation canceled tokens=\(generated)/\(job.maxTokens) (client gone: \(end))")
            return error
        case .shutdown(let words)?:
            metrics.shutdown.increment()
            context.logger.info("generation ended by shutdown tokens=\(generated)/\(job.maxTokens)")
            return HTTPError(.serviceUnavailable, message: words, kind: "server_error")
        case .deadlineExceeded?, nil:
            // No route here has a deadline; anything else is a real failure (500).
            return error
        }
    }

    /// Where a stream resumes: after the `Last-Event-ID` a reconnecting client sends, when it
    /// is a whole number; from the start otherwise.
    static func resumePoint(_ lastEventID: String?) -> Int {
        guard let text = lastEventID, !text.isEmpty, text.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) })
        else { return 0 }
        // A number too big for Int is still past every token.
        guard let last = Int(text), last < Int.max else { return Int.max }
        return last + 1
    }

    // MARK: - JSON

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        // Sorted keys: the same request always gets the same bytes.
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    static func json<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}

/// One model. Its JSON is written by hand so its keys come in OpenAI's order (`id`, `object`,
/// `owned_by`); the ids are fixed and need no escaping.
struct Model: ResponseGenerator, Sendable {
    let id: String

    var json: String { #"{"id":"\#(id)","object":"model","owned_by":"example"}"# }

    func response(from request: Request, context: RequestContext) throws -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(string: json))
    }
}

/// `GET /v1/models`: `{"object":"list","data":[…]}`.
struct ModelList: ResponseGenerator, Sendable {
    let data: [Model]

    func response(from request: Request, context: RequestContext) throws -> Response {
        let json = #"{"object":"list","data":["# + data.map(\.json).joined(separator: ",") + "]}"
        return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(string: json))
    }
}

/// A whole completion, or one streamed chunk of it (no `usage`).
struct Completion: Encodable, Sendable {
    let id: String
    let object = "text_completion"
    let created: Int
    let model: String
    let choices: [Choice]
    let usage: Usage?

    enum CodingKeys: String, CodingKey { case id, object, created, model, choices, usage }
}

/// The one choice.
struct Choice: Encodable, Sendable {
    let text: String
    /// `nil` until the last token; sent as JSON `null`, never left out.
    let finishReason: String?

    enum CodingKeys: String, CodingKey {
        case index, text
        case finishReason = "finish_reason"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(0, forKey: .index)
        try container.encode(text, forKey: .text)
        // The synthesized encoding would omit a nil; clients look for an explicit null.
        if let finishReason { try container.encode(finishReason, forKey: .finishReason) } else { try container.encodeNil(forKey: .finishReason) }
    }
}

/// Token counts.
struct Usage: Encodable, Sendable {
    let promptTokens: Int
    let completionTokens: Int

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens"
        case completionTokens = "completion_tokens"
        case totalTokens = "total_tokens"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(promptTokens, forKey: .promptTokens)
        try container.encode(completionTokens, forKey: .completionTokens)
        try container.encode(promptTokens + completionTokens, forKey: .totalTokens)
    }
}
