import EventHTTP
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `POST /v1/completions`'s body, checked in the contract's order: content type (415), size
/// (413), then the JSON itself (400). The model's existence (404) is the caller's last check.
struct CompletionRequest: Decodable, Sendable {
    let model: String
    let prompt: String
    let maxTokens: Int
    let stream: Bool

    /// The accepted range of `max_tokens`.
    static let maxTokensRange = 1...4096

    enum CodingKeys: String, CodingKey {
        case model, prompt, stream
        case maxTokens = "max_tokens"
    }

    init(from decoder: any Decoder) throws {
        // decodeIfPresent reads `null` as absent; a value of the wrong type still throws.
        let container = try decoder.container(keyedBy: CodingKeys.self)
        guard let model = try container.decodeIfPresent(String.self, forKey: .model) else {
            throw FieldProblem("missing field \"model\"")
        }
        guard let prompt = try container.decodeIfPresent(String.self, forKey: .prompt) else {
            throw FieldProblem("missing field \"prompt\"")
        }
        self.model = model
        self.prompt = prompt
        self.maxTokens = try container.decodeIfPresent(Int.self, forKey: .maxTokens) ?? 16
        self.stream = try container.decodeIfPresent(Bool.self, forKey: .stream) ?? false
    }

    /// The request's body, or the error to answer.
    static func validated(_ request: Request, maxBodyBytes: Int) throws(HTTPError) -> CompletionRequest {
        guard let type = request.headers[.contentType], isJSON(type) else {
            throw OpenAIError.invalid(.unsupportedMediaType, "Content-Type must be application/json")
        }
        guard request.body.bytes.count <= maxBodyBytes else {
            throw OpenAIError.invalid(.contentTooLarge, "the body is larger than \(maxBodyBytes) bytes")
        }
        let body: CompletionRequest
        do {
            body = try request.body.decode(as: CompletionRequest.self)
        } catch {
            throw OpenAIError.invalid(.badRequest, error.body)
        }
        guard maxTokensRange.contains(body.maxTokens) else {
            throw OpenAIError.invalid(.badRequest, "max_tokens must be between 1 and 4096, got \(body.maxTokens)")
        }
        guard body.prompt.contains(where: { !$0.isWhitespace }) else {
            throw OpenAIError.invalid(.badRequest, "prompt must contain at least one word")
        }
        return body
    }

    /// `application/json` in any case, parameters (`; charset=utf-8`) allowed.
    static func isJSON(_ value: String) -> Bool {
        let mediaType = value.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return mediaType.trimmingCharacters(in: .whitespaces).lowercased() == "application/json"
    }
}

/// A body that is JSON but not a completion request, in words.
struct FieldProblem: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// OpenAI's error shape, `{"error":{"message","type"}}`, for every error answer.
enum OpenAIError {
    /// Renders every error answer the server sends: the handlers', the router's 404 and 405,
    /// the drain's 503 and the transport's 413. The type comes from ``HTTPError/kind`` when the
    /// handler gave one, else from the status.
    static let renderer = ErrorRenderer { answer in
        let type = answer.kind ?? defaultType(for: answer.status)
        return ("application/json", body(message: answer.message, type: type))
    }

    static func defaultType(for status: HTTPResponse.Status) -> String {
        if status == .notFound { return "not_found_error" }
        if status.code >= 500 { return "server_error" }
        return "invalid_request_error"
    }

    /// `{"error":{"message":…,"type":…}}`.
    static func body(message: String, type: String) -> String {
        struct Envelope: Encodable {
            struct Detail: Encodable {
                let message: String
                let type: String
            }
            let error: Detail
        }
        let data = try? Generator.encoder.encode(Envelope(error: .init(message: message, type: type)))
        return data.map { String(decoding: $0, as: UTF8.self) } ?? #"{"error":{"message":"error","type":"server_error"}}"#
    }

    static func invalid(_ status: HTTPResponse.Status, _ message: String) -> HTTPError {
        HTTPError(status, message: message, kind: "invalid_request_error")
    }

    static func notFound(_ message: String) -> HTTPError {
        HTTPError(.notFound, message: message, kind: "not_found_error")
    }
}
