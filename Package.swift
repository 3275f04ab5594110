// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "greetd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "greetd", targets: ["greetd"]),
        .executable(name: "greet-stress", targets: ["greet-stress"]),
        .library(name: "GreetdCore", targets: ["GreetdCore"]),
        // The library others embed: the loop executor, the HTTP server with async routes and
        // streaming, and Go-style contexts.
        .library(name: "EventHTTP", targets: ["EventHTTP", "Libevent", "GoContext"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
    ],
    targets: [
        // C only: the module map and a shim header over libevent's event2 headers.
        .systemLibrary(
            name: "CLibevent",
            path: "Modules/CLibevent",
            pkgConfig: "libevent",
            providers: [.apt(["libevent-dev"]), .brew(["libevent"])]
        ),
        // The one funnel for OS calls: platform spellings, EINTR retry, typed errno. No dependencies.
        .target(name: "GreetdSystem"),
        // Pure rules shared by everything, fuzzers included: Go durations, log-line format,
        // client-facing fields, query rules, metric names. No dependencies.
        .target(name: "GreetdRules"),
        // The thin, safe Swift layer over libevent: event_base, events, timers, the loop
        // executor, and the evhttp adapter (server, connections, requests, streamed replies).
        .target(name: "Libevent", dependencies: ["CLibevent", "GreetdSystem", "GreetdRules"]),
        // The client side: aborting sockets and the HTTP response parser (greet-stress, tests).
        .target(name: "GreetdClient", dependencies: ["Libevent", "GreetdSystem", "GreetdRules"]),
        // Go-style request contexts (cancellation, errors with Go's text).
        .target(name: "GoContext", dependencies: ["GreetdSystem"]),
        // Async handlers on the loop, cancelled when the client leaves; streamed responses.
        .target(name: "EventHTTP", dependencies: ["Libevent", "GoContext", "GreetdSystem"]),
        // The greeting server: routing, the greeting's timers, shutdown, the access log, stats
        // and metrics, workers and systemd readiness.
        .target(
            name: "GreetdCore",
            dependencies: [
                "Libevent", "EventHTTP", "GoContext", "GreetdSystem", "GreetdRules",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .executableTarget(
            name: "greetd",
            dependencies: [
                "GreetdCore", "GreetdSystem",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // A load generator of aborting clients, checked against greetd's /metrics.
        .executableTarget(
            name: "greet-stress",
            dependencies: [
                "Libevent", "GreetdClient", "GreetdRules", "GreetdSystem",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "executor-bench", dependencies: ["Libevent"], path: "Benchmarks/executor"),
        // The README's "Embedding" example, built with the package; GreetdCLITests checks that the
        // README shows exactly this file.
        .executableTarget(name: "hello-cancellable", dependencies: ["EventHTTP"], path: "Examples/HelloCancellable"),
        // Shared by the test targets: loopback helpers and the one response parser.
        .target(name: "TestSupport", dependencies: ["GreetdClient", "GreetdSystem", "Libevent"], path: "Tests/TestSupport"),
        .testTarget(name: "GreetdSystemTests", dependencies: ["GreetdSystem"]),
        .testTarget(name: "GreetdRulesTests", dependencies: ["GreetdRules", "GreetdSystem"]),
        .testTarget(name: "LibeventTests", dependencies: ["Libevent", "GreetdSystem", "TestSupport"]),
        .testTarget(name: "GreetdClientTests", dependencies: ["GreetdClient", "GreetdSystem", "Libevent", "TestSupport"]),
        .testTarget(name: "GoContextTests", dependencies: ["GoContext"]),
        .testTarget(name: "EventHTTPTests", dependencies: ["EventHTTP", "Libevent", "TestSupport", "GreetdClient", "GreetdSystem"]),
        .testTarget(
            name: "GreetdCoreTests",
            dependencies: ["GreetdCore", "Libevent", "GoContext", "GreetdRules", "GreetdClient", "GreetdSystem", "TestSupport", .product(name: "Logging", package: "swift-log")]
        ),
        // Runs the built `greetd` binary as a user would.
        .testTarget(name: "GreetdCLITests", dependencies: ["greetd", "greet-stress", "hello-cancellable", "GreetdRules", "GreetdSystem", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
