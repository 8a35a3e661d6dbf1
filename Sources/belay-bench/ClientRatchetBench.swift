import BelayE2E
import BelaySodium
import BelayWire
import Foundation

/// The client's figure: messages per second sealed by one side and opened by the other through
/// the whole path a real message takes (content encoding, padding, ratchet, XChaCha20-Poly1305,
/// and the state restored from and saved to its storage form). The direction changes every
/// `run` messages, so DH ratchet steps are included.
///
/// The local store restores and saves a contact's state once per batch: once per `send` of
/// several texts, and once per relay batch of a `read` (at most 16 messages). `batch` is that
/// batch; 1 is what the store did before, around every message.
enum ClientRatchetBench {
    /// Messages in one direction before the other side answers.
    static let run = 10

    struct Figure {
        /// Messages per second of elapsed time.
        var wall: Double
        /// Messages per second of this thread's CPU time: one core's rate, whatever else the
        /// machine is doing.
        var perCore: Double
    }

    static func run(messages: Int, size: Int, batch: Int) throws -> Figure {
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
        let cpuStart = threadCPUNanoseconds()
        var i = 0
        while i < messages {
            let from = (i / run) % 2
            let to = 1 - from
            // One batch: as many messages as remain in this direction, at most `batch`.
            let count = min(batch, run - i % run, messages - i)
            var sender = try Ratchet(serialized: states[from])
            var receiver = try Ratchet(serialized: states[to])
            var sealed: [[UInt8]] = []
            for k in 0..<count {
                sealed.append(try Envelope.seal(Content(kind: .text, sequence: UInt64(i + k + 1), sentAt: 0, body: body), with: &sender))
            }
            states[from] = try sender.serialized()
            for message in sealed {
                let opened = try Envelope.open(message, with: &receiver)
                precondition(opened.body.count == body.count, "the benchmark's message did not round-trip")
            }
            states[to] = try receiver.serialized()
            i += count
        }
        let cpu = Double(threadCPUNanoseconds() - cpuStart) / 1e9
        let wall = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return Figure(wall: Double(messages) / wall, perCore: Double(messages) / cpu)
    }

    /// CPU time of the calling thread. `run` does not suspend, so it stays on one thread.
    private static func threadCPUNanoseconds() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }
}
