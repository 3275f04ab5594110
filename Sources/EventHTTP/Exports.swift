// `import EventHTTP` brings the whole library: the loop (`EventBase`, `LoopExecutor`,
// `sleep(for:)`), the HTTP server (`LoopHTTPServer`, `LoopResponder`, `LoopRequest`) and this
// module's async layer. Go-style contexts stay in `GoContext`, a product target of their own.
@_exported import EventHTTPCore
