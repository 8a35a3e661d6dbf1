import ArgumentParser
import BelayClient
import BelayWire
import Foundation
import NIOPosix

struct RelayInfoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info", abstract: "Show a relay's signed policy.",
        discussion: """
            Fetches the policy the relay signs (message expiry, delivery jitter, log level, whether \
            client addresses are logged, whether tokens or proof of work are required, limits) over an \
            encrypted connection to the key in its address, and checks the signature. With a Belay \
            identity, the relay's policy key is remembered the first time; a later policy signed by \
            another key is refused (exit 5). If the relay's operator tells you, out of band, that the \
            relay has a new policy key, compare it with the one shown and run this with --trust-new-key.

            Examples:
              belay relay info 'belay://relay.example.org:7707/#KEY'
              belay relay info 'belay://relay.example.org:7707/#KEY' --json
            """)

    @OptionGroup var state: StateOptions
    @OptionGroup var network: ProxyOptions
    @Argument(help: "The relay's address, belay://HOST:PORT/#KEY.") var address: String
    @Flag(help: "Print one JSON object.") var json = false
    @Flag(help: "Replace the remembered policy key with the one the relay signs with now (after checking with its operator).")
    var trustNewKey = false

    func run() async throws {
        try await guarded {
            let relay = try parseRelay(address)
            let route = try network.route()
            let policy: RelayPolicy
            if Agent.exists(home: state.resolvedHome) {
                policy = try await state.open(through: network).relayPolicy(relay, trustingNewKey: trustNewKey).policy
            } else {
                policy = try await Agent.fetchPolicy(relay, group: MultiThreadedEventLoopGroup.singleton, route: route)
            }
            if json {
                JSONLines.print(PolicyJSON(relay: relay.description, policy: policy))
                return
            }
            print("relay \(relay.host):\(relay.port)")
            print("  policy signed by \(Base64URL.encode(policy.policyKey)), issued \(policy.issuedAt)")
            print("  \(policy.summary)")
            print(
                "  limits: \(policy.rateLimitPerSecond) commands/s (burst \(policy.rateBurst)); a queue holds \(policy.maxQueueMessages) messages, "
                    + "\(policy.maxQueueBytes) bytes"
                    + (policy.sendRatePerQueue > 0 ? "; \(policy.sendRatePerQueue) sends/s per queue (burst \(policy.sendBurstPerQueue))" : ""))
        }
    }
}

/// `relay info --json`: every field of the policy, by name.
struct PolicyJSON: Encodable {
    var relay: String
    var policy_key: String
    var issued_at: UInt64
    var message_ttl_seconds: UInt32
    var delivery_jitter_ms: UInt32
    var log_level: String
    var logs_client_addresses: Bool
    var tokens_required: Bool
    var creation_pow_bits: UInt8
    var rate_limit_per_second: UInt32
    var rate_burst: UInt32
    var max_queue_messages: UInt32
    var max_queue_bytes: UInt64
    var send_rate_per_queue: UInt32
    var send_burst_per_queue: UInt32

    init(relay: String, policy p: RelayPolicy) {
        self.relay = relay
        policy_key = Base64URL.encode(p.policyKey)
        issued_at = p.issuedAt
        message_ttl_seconds = p.messageTTLSeconds
        delivery_jitter_ms = p.deliveryJitterMilliseconds
        log_level = p.logLevel.description
        logs_client_addresses = p.logsClientAddresses
        tokens_required = p.tokensRequired
        creation_pow_bits = p.creationPowBits
        rate_limit_per_second = p.rateLimitPerSecond
        rate_burst = p.rateBurst
        max_queue_messages = p.maxQueueMessages
        max_queue_bytes = p.maxQueueBytes
        send_rate_per_queue = p.sendRatePerQueue
        send_burst_per_queue = p.sendBurstPerQueue
    }
}

/// The one line `invite` and `accept` print the first time a relay is used.
func announceNewRelays(_ agent: Agent) {
    agent.onNewRelay = { address, policy in
        Terminal.note("first use of relay \(address.host):\(address.port): \(policy.summary)")
    }
}
