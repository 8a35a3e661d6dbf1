// swift-tools-version:6.0
//
// Belay: end-to-end encrypted messaging with a relay that learns as little as possible.
//
// Layers, dependencies pointing one way:
//   CSodium -> BelaySodium (libsodium boundary)
//           -> BelayWire   (pure codecs, Noise, relay commands)
//           -> BelayRelay  (server, store)   |  BelayE2E (pairing, ratchet) -> BelayClient (relay connection, local store, agent)
//           -> belayd, belay, belay-bench    (thin executables)
import PackageDescription

let package = Package(
    name: "belay",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "belayd", targets: ["belayd"]),
        .executable(name: "belay", targets: ["belay"]),
        .executable(name: "belay-bench", targets: ["belay-bench"]),
        .executable(name: "belay-fuzz", targets: ["belay-fuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        .target(name: "BelaySodium", dependencies: ["CSodium"]),
        .systemLibrary(name: "CQREncode", pkgConfig: "libqrencode", providers: [.apt(["libqrencode-dev"])]),
        .target(
            name: "BelayWire",
            dependencies: [
                "BelaySodium",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .target(
            name: "BelayRelay",
            dependencies: [
                "BelaySodium",
                "BelayWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .target(
            name: "BelayE2E",
            dependencies: [
                "BelaySodium",
                "BelayWire",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "BelayClient",
            dependencies: [
                "BelaySodium",
                "BelayWire",
                "BelayE2E",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .executableTarget(
            name: "belayd",
            dependencies: [
                .product(name: "Prometheus", package: "swift-prometheus"),
                "BelayRelay",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "belay",
            dependencies: [
                "BelayClient",
                "BelayE2E",
                "BelayWire",
                "BelaySodium",
                "CQREncode",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "belay-bench",
            dependencies: [
                "BelayClient",
                "BelayE2E",
                "BelayWire",
                "BelaySodium",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Every parser as a libFuzzer target (`make fuzz`); built normally, it replays files.
        .executableTarget(
            name: "belay-fuzz",
            dependencies: [
                "BelayWire", "BelayE2E", "BelayRelay", "BelaySodium",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // Real servers the tests start themselves (PostgreSQL, a SOCKS5 proxy).
        .target(
            name: "BelayTestSupport",
            dependencies: [
                "BelayClient", "BelayRelay",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Tests/Support", exclude: ["pg-throwaway.sh"]
        ),
        .testTarget(name: "BelaySodiumTests", dependencies: ["BelaySodium"], resources: [.copy("Fixtures")]),
        .testTarget(
            name: "BelayWireTests",
            dependencies: ["BelayWire", "BelaySodium", .product(name: "NIOCore", package: "swift-nio")],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(name: "BelayE2ETests", dependencies: ["BelayE2E", "BelaySodium", "BelayWire"]),
        .testTarget(
            name: "BelayRelayTests",
            dependencies: [
                "BelayRelay", "BelayClient", "BelayWire", "BelaySodium", "BelayTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "BelaydTests",
            dependencies: [
                "BelayClient", "BelayE2E", "BelayWire", "BelaySodium", "BelayRelay", "BelayTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            exclude: ["Golden"]
        ),
    ]
)
