import EventHTTP

// One libevent loop on this thread; handlers run as Tasks on it (no thread hop).
let server = try AsyncHTTPServer(host: "127.0.0.1", port: 8080)

server.router.get("/") { request, response in
    print("\(request.id): thinking for 5 s")
    defer { print("\(request.id): cleanup runs either way") }
    do {
        // Slow work: a libevent timer. If the client leaves (FIN, RST, half-close),
        // the handler's Task is cancelled and the sleep throws at once.
        try await request.executor.sleep(for: .seconds(5))
    } catch is CancellationError {
        print("\(request.id): client left (\(request.clientEnd?.description ?? "?")), work stopped")
        return
    }
    try response.respond(status: 200, body: "Hello Gopher!\n")
}

print("listening on http://\(server.addresses[0])")
try server.run()
