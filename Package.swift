// swift-tools-version: 6.0
import PackageDescription

/// The library's modules: compiled with the compiler's import checks, and sharing their
/// internals with each other through `package` access.
let libraryChecks: [SwiftSetting] = [
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "greetd",
    platforms: [.macOS(.v15)],
    products: [
        // MARK: The library, EventHTTP: a family of modules with the library's name, nothing of greetd's.
        // The front door: routes, bodies, errors, middleware, SSE, N loops, ServiceLifecycle.
        .library(name: "EventHTTP", targets: ["EventHTTP"]),
        // The loop and the evhttp adapter underneath (callback-style handlers, timers, executor).
        .library(name: "EventHTTPCore", targets: ["EventHTTPCore"]),
        // Go-style request contexts (cancellation with Go's error texts).
        .library(name: "EventHTTPContext", targets: ["EventHTTPContext"]),
        // Go durations (`1.5s`, `20ms`): parser, formatter and conversions.
        .library(name: "EventHTTPDuration", targets: ["EventHTTPDuration"]),
        // The OS-call funnel underneath: typed `Errno`, EINTR-safe calls (`SystemCalls`), signals.
        .library(name: "EventHTTPSystem", targets: ["EventHTTPSystem"]),
        // swift-openapi-runtime's ServerTransport on EventHTTP.
        .library(name: "EventHTTPOpenAPI", targets: ["EventHTTPOpenAPI"]),

        // MARK: The application, greetd, built on the library's public API.
        .executable(name: "greetd", targets: ["greetd"]),
        .executable(name: "greet-stress", targets: ["greet-stress"]),
        .executable(name: "token-stream", targets: ["token-stream"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-openapi-runtime", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
    ],
    targets: [
        // MARK: Library
        // C only: the module map and a shim header over libevent's event2 headers.
        .systemLibrary(
            name: "CLibevent",
            path: "Modules/CLibevent",
            pkgConfig: "libevent",
            providers: [.apt(["libevent-dev"]), .brew(["libevent"])]
        ),
        // The one funnel for OS calls: platform spellings, EINTR retry, typed errno. No dependencies.
        .target(name: "EventHTTPSystem", swiftSettings: libraryChecks),
        // Go durations: parse, format, convert to Duration and timer intervals. No dependencies.
        .target(name: "EventHTTPDuration", swiftSettings: libraryChecks),
        // The thin, safe Swift layer over libevent: event_base, events, timers, the loop
        // executor, and the evhttp adapter (server, connections, requests, streamed replies).
        .target(name: "EventHTTPCore", dependencies: ["CLibevent", "EventHTTPSystem", "EventHTTPDuration"],
                swiftSettings: libraryChecks),
        // Go-style request contexts (cancellation, errors with Go's text).
        .target(name: "EventHTTPContext", dependencies: ["EventHTTPSystem"], swiftSettings: libraryChecks),
        // The front door: async handlers on the loop, cancelled when the client leaves; the router,
        // bodies, responses and errors, middleware, SSE, the N-loop server and its Service.
        .target(
            name: "EventHTTP",
            dependencies: [
                "EventHTTPCore", "EventHTTPSystem", "EventHTTPDuration",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: libraryChecks
        ),
        .target(
            name: "EventHTTPOpenAPI",
            dependencies: [
                "EventHTTP",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
            ],
            swiftSettings: libraryChecks
        ),

        // MARK: Application (no `package` access: only the library's public API)
        // Pure rules of greetd's, fuzzers included: log-line format, client-facing fields, query
        // rules, metric names.
        .target(name: "GreetdRules", dependencies: ["EventHTTPDuration"], packageAccess: false),
        // The client side: aborting sockets and the HTTP response parser (greet-stress, tests).
        .target(name: "GreetdClient", dependencies: ["EventHTTPCore", "EventHTTPSystem", "GreetdRules"], packageAccess: false),
        // The greeting server: the greeting's timers, shutdown, the access log, stats and metrics,
        // workers and systemd readiness, on EventHTTP.
        .target(
            name: "GreetdCore",
            dependencies: [
                "EventHTTP", "EventHTTPCore", "EventHTTPContext", "EventHTTPSystem", "EventHTTPDuration", "GreetdRules",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            packageAccess: false
        ),
        .executableTarget(
            name: "greetd",
            dependencies: [
                "GreetdCore", "EventHTTPSystem", "EventHTTPDuration",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            packageAccess: false
        ),
        // A load generator of aborting clients, checked against greetd's /metrics.
        .executableTarget(
            name: "greet-stress",
            dependencies: [
                "EventHTTPCore", "GreetdClient", "GreetdRules", "EventHTTPSystem", "EventHTTPDuration",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            packageAccess: false
        ),
        .executableTarget(name: "executor-bench", dependencies: ["EventHTTPCore", "EventHTTP"], path: "Benchmarks/executor", packageAccess: false),

        // MARK: Examples (adopters of the library: public API only)
        // The README's "Embedding" example; GreetdCLITests checks that the README shows this file.
        .executableTarget(name: "hello-cancellable", dependencies: ["EventHTTP", .product(name: "Logging", package: "swift-log"), .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")], path: "Examples/HelloCancellable",
                          packageAccess: false),
        // A fake completions service (OpenAI's wire format) whose tokens stop when the client leaves.
        .executableTarget(
            name: "token-stream",
            dependencies: [
                "EventHTTP", "EventHTTPDuration",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Examples/TokenStream",
            packageAccess: false
        ),

        // MARK: Tests
        // Shared by the test targets: loopback helpers and the one response parser.
        .target(name: "TestSupport", dependencies: ["GreetdClient", "EventHTTPSystem", "EventHTTPCore"], path: "Tests/TestSupport"),
        .testTarget(name: "EventHTTPSystemTests", dependencies: ["EventHTTPSystem"]),
        .testTarget(name: "EventHTTPDurationTests", dependencies: ["EventHTTPDuration"]),
        .testTarget(name: "GreetdRulesTests", dependencies: ["GreetdRules", "EventHTTPDuration", "EventHTTPSystem"]),
        .testTarget(name: "EventHTTPCoreTests", dependencies: ["EventHTTPCore", "EventHTTPSystem", "TestSupport"]),
        .testTarget(name: "GreetdClientTests", dependencies: ["GreetdClient", "EventHTTPSystem", "EventHTTPCore", "TestSupport"]),
        .testTarget(name: "EventHTTPContextTests", dependencies: ["EventHTTPContext"]),
        .testTarget(
            name: "EventHTTPTests",
            dependencies: [
                "EventHTTP", "EventHTTPCore", "TestSupport", "GreetdClient", "EventHTTPSystem",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "EventHTTPOpenAPITests",
            dependencies: [
                "EventHTTPOpenAPI", "EventHTTP", "TestSupport", "GreetdClient",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
            ]
        ),
        .testTarget(
            name: "GreetdCoreTests",
            dependencies: ["GreetdCore", "EventHTTPCore", "EventHTTPContext", "EventHTTPDuration", "GreetdRules", "GreetdClient",
                           "EventHTTPSystem", "TestSupport", .product(name: "Logging", package: "swift-log")]
        ),
        // Runs the built `greetd` and `token-stream` binaries as a user would.
        .testTarget(name: "GreetdCLITests", dependencies: ["greetd", "greet-stress", "hello-cancellable", "token-stream",
                                                          "GreetdRules", "EventHTTPSystem", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
