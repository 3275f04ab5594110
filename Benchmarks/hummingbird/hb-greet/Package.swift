// swift-tools-version: 6.1
// Hummingbird 2, as the reference for greetd's async figures (Benchmarks/run.py builds and runs it).
// A package of its own (in Benchmarks/hummingbird/hb-greet: a root package in a folder named
// "hummingbird" would take the dependency's identity): greetd's package never depends on it.
import PackageDescription

let package = Package(
    name: "hb-greet",
    platforms: [.macOS(.v15)],
    dependencies: [
        // No traits: neither swift-configuration support nor full Foundation is needed here,
        // and leaving them out shortens the first build.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
    ],
    targets: [
        .executableTarget(
            name: "hb-greet",
            dependencies: [.product(name: "Hummingbird", package: "hummingbird")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
