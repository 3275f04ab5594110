// `import EventHTTP` brings the front door (router, requests, responses, errors, middleware,
// SSE, the server), the transport underneath it (`EventHTTPCore`: `LoopExecutor` and its
// `sleep(for:)`, `LoopRequest` for callback-style routes, `IPEndpoint`, `ConnectionEnd`), and
// swift-http-types' vocabulary (`HTTPRequest`, `HTTPResponse`, `HTTPFields`), as Hummingbird
// does. Neither is a C or OS module: libevent and the C library stay behind the library.
@_exported public import EventHTTPCore
@_exported public import HTTPTypes
