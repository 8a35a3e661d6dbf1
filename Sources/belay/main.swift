import ArgumentParser
import BelayWire

/// belay: the Belay client. This release only identifies itself; messaging arrives with the
/// client issue, built on BelayClient.
struct Belay: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "belay",
        abstract: "Belay: end-to-end encrypted messaging and check-ins for people who look after each other.",
        discussion: "This build has no client commands yet; it prints its version. The relay is belayd.",
        version: BelayVersion.string
    )

    func run() throws {
        print("belay \(BelayVersion.string) (protocol \(Preamble.currentVersion))")
    }
}

Belay.main()
