// GreetdClient: the client side (sockets that abort the way clients do, the HTTP response
// parser) for greet-stress and the tests, never linked into the server binary.
