import BelayE2E
import BelaySodium
import BelayWire
import Foundation

/// The client's figure: messages per second sealed by one side and opened by the other through
/// the whole path a real message takes (content encoding, padding, ratchet, XChaCha20-Poly1305,
/// and the state serialised and restored as the local store does for every message). The
/// direction changes every 10 messages, so DH ratchet steps are included.
enum ClientRatchetBench {
    static func run(messages: Int, size: Int) throws -> Double {
        let inviter = try Identity.generate()
        let acceptor = try Identity.generate()
        let oneTime = try X25519.KeyPair.generate()
        let pq = try PQKEM.KeyPair.generate()
        let queue = QueueRef(relay: RelayAddress(host: "127.0.0.1", port: 1, publicKey: [UInt8](repeating: 1, count: 32)), senderId: EntityID.random())
        let invitation = try Invitation.make(queue: queue, identity: inviter, oneTimeKey: oneTime.publicKey, pqKey: pq.publicKey, expires: 0)
        let (confirmation, acceptorRatchet) = try Pairing.accept(
            invitation, identity: acceptor, replyQueue: queue,
            replySenderSeed: SecureBytes.random(count: 32),
            inviterQueueSenderKey: [UInt8](repeating: 2, count: 32))
        let (_, inviterRatchet) = try Pairing.complete(
            confirmation, pending: PendingInvitation(invitation: invitation, oneTimeKey: oneTime, pqKey: pq),
            identity: inviter)
        var states = [try acceptorRatchet.serialized(), try inviterRatchet.serialized()]
        let body = [UInt8](repeating: 0x61, count: min(size, Envelope.maxContentLength))
        let start = DispatchTime.now().uptimeNanoseconds
        for i in 0..<messages {
            let from = (i / 10) % 2
            let to = 1 - from
            var sender = try Ratchet(serialized: states[from])
            let sealed = try Envelope.seal(Content(kind: .text, sequence: UInt64(i + 1), sentAt: 0, body: body), with: &sender)
            states[from] = try sender.serialized()
            var receiver = try Ratchet(serialized: states[to])
            let opened = try Envelope.open(sealed, with: &receiver)
            states[to] = try receiver.serialized()
            precondition(opened.body.count == body.count, "the benchmark's message did not round-trip")
        }
        return Double(messages) / (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
}
