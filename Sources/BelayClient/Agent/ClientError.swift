import BelayE2E
import Foundation

/// Everything the client can report. Each case says what went wrong and, through `hint`, what
/// the person can do; `exitCode` is the documented process exit status (README, "Exit codes").
public enum ClientError: Error, Equatable, CustomStringConvertible {
    case noState(String)
    case stateExists(String)
    case wrongPassphrase
    case passphraseRequired
    case stateDamaged(String)
    case unknownContact(String)
    case contactExists(String)
    case invalidName(String)
    case invalidInput(String)
    case relayUnreachable(relay: String, why: String, queued: Int)
    /// The SOCKS5 proxy (`--proxy`, `BELAY_PROXY`) could not be used; nothing went around it.
    case proxyUnreachable(proxy: String, why: String, queued: Int)
    /// An onion relay without a proxy to reach it through.
    case onionNeedsProxy(relay: String, queued: Int)
    case invalidProxy(source: String, why: String)
    /// The relay's signed policy did not verify against its key or the policy key pinned for it.
    case relayPolicyInvalid(relay: String, why: String)
    case relayRefused(String)
    case notYetPaired(String)
    case identityChanged(name: String, verified: Bool)
    case notConfirmed
    case checkinCodeRequired
    case wrongCheckinCode
    case unverifiedContacts([String])
    case checkinPartlyArmed(armed: [String], missing: [String], cause: String)
    case contactUnderDuress(String)
    case checkinPartlyRenewed(renewed: [String], missing: [String], cause: String)
    case checkinNotRemoved(armed: [String], stillArmed: [String], cause: String)
    case stateBusy
    case unknownGroup(String)
    case groupExists(String)
    case notGroupAdmin(String)
    case notGroupMember(group: String, member: String)
    case unknownRequest(String)
    case claimedByOther(String)
    case unknownIntroduction(String)
    /// The relay creates queues only for holders of an organisation token; `presented` says
    /// whether one was sent (and refused), `retry` the command that gives one.
    case tokenRequired(relay: String, presented: Bool, retry: String)
    /// The relay answered RATE: too many messages to one queue (from anyone, through any
    /// address), or commands from this connection. `queued` messages stay in the outbox.
    case relayBusy(relay: String, queued: Int)

    public var description: String {
        switch self {
        case let .noState(home): "no Belay identity in \(home)"
        case let .stateExists(home): "\(home) already holds a Belay identity; refusing to overwrite it"
        case .wrongPassphrase: "wrong passphrase"
        case .passphraseRequired: "a passphrase is required"
        case let .stateDamaged(what): "the local state is damaged: \(what)"
        case let .unknownContact(name): "no contact named \"\(name)\""
        case let .contactExists(name): "a contact named \"\(name)\" already exists"
        case let .invalidName(why): "invalid name: \(why)"
        case let .invalidInput(why): why
        case let .relayUnreachable(relay, why, queued):
            queued > 0 ? "cannot reach the relay \(relay) (\(why)); \(queued) message(s) saved and not lost" : "cannot reach the relay \(relay) (\(why))"
        case let .proxyUnreachable(proxy, why, queued):
            "cannot use the proxy \(proxy) (\(why))" + (queued > 0 ? "; \(queued) message(s) saved and not lost" : "")
        case let .onionNeedsProxy(relay, queued):
            "\(relay) is an onion relay, which can be reached only through Tor" + (queued > 0 ? "; \(queued) message(s) saved and not lost" : "")
        case let .invalidProxy(source, why): "\(source): \(why)"
        case let .relayPolicyInvalid(relay, why): "the relay \(relay) cannot be trusted as it is: \(why)"
        case let .relayRefused(why): "the relay refused: \(why)"
        case let .notYetPaired(name): "\"\(name)\" has not finished pairing yet"
        case let .identityChanged(name, verified):
            verified
                ? "SECURITY: the identity key of verified contact \"\(name)\" has changed. Nothing was changed or sent."
                : "the identity key of \"\(name)\" has changed"
        case .notConfirmed: "not confirmed; nothing was changed"
        case .checkinCodeRequired: "this check-in needs its code"
        case .wrongCheckinCode: "that is not the check-in code; you are not checked in"
        case let .unverifiedContacts(names):
            "not armed: \(names.joined(separator: ", ")) \(names.count == 1 ? "is" : "are") not verified, so an intercepted invitation could have put someone else in their place"
        case let .checkinPartlyArmed(armed, missing, cause):
            "the check-in is armed for \(armed.isEmpty ? "nobody new" : armed.joined(separator: ", ")) but not for \(missing.joined(separator: ", ")): \(cause)"
        case .stateBusy: "another belay command is using the local state and did not finish within 10 seconds"
        case let .checkinNotRemoved(armed, stillArmed, cause):
            (armed.isEmpty
                ? "the check-in is not disarmed for \(stillArmed.joined(separator: ", ")), who will still be alerted"
                : "the check-in is armed for \(armed.joined(separator: ", ")), but \(stillArmed.joined(separator: ", ")) could not be taken off it "
                    + "and will still be alerted") + ": \(cause)"
        case let .checkinPartlyRenewed(renewed, missing, cause):
            "checked in with \(renewed.joined(separator: ", ")), but NOT with \(missing.joined(separator: ", ")): \(cause)"
        case let .unknownGroup(name): "no group or roster named \"\(name)\""
        case let .groupExists(name): "you are already in a group named \"\(name)\""
        case let .notGroupAdmin(name): "only an admin of \"\(name)\" can do that, and you are not one"
        case let .notGroupMember(group, member): "\"\(member)\" is not a member of \"\(group)\""
        case let .unknownRequest(id): "no request \(id) is waiting for a claim"
        case let .claimedByOther(id): "request \(id) was already claimed by someone else (or it expired); you are not the one taking it"
        case let .unknownIntroduction(id): "no introduction \(id) is waiting for your answer"
        case let .relayBusy(relay, queued):
            "the relay \(relay) asked to slow down (too many messages to one queue, or commands on one connection)"
                + (queued > 0 ? "; \(queued) message(s) saved and not lost" : "")
        case let .tokenRequired(relay, presented, _):
            presented
                ? "the relay \(relay) refused the organisation token (unknown, revoked, or its quota of queues is used up)"
                : "this relay (\(relay)) requires an organisation token to create queues"
        case let .contactUnderDuress(name):
            "not sent: \(name) checked in under duress recently, and a message appears on their device, which someone may be watching"
        }
    }

    public var hint: String? {
        switch self {
        case .noState: "run `belay init` first, or set BELAY_HOME to where your state is"
        case .stateExists: "use another BELAY_HOME, or `belay wipe` first if you really mean to start again"
        case .wrongPassphrase: "try again; set BELAY_PASSPHRASE only in scripts"
        case .checkinCodeRequired: "type it at the prompt, or set BELAY_CHECKIN_CODE for scripts"
        case .wrongCheckinCode: "try again before the deadline"
        case .relayPolicyInvalid:
            "someone may be impersonating the relay, or its operator changed its policy key: ask the operator, out of band, before using it; if they confirm a new key, run `belay relay info ADDRESS --trust-new-key`"
        case let .unverifiedContacts(names):
            "compare safety numbers with `belay verify \(names[0])` first, or pass --allow-unverified to arm anyway"
        case let .checkinPartlyArmed(_, missing, _):
            "until you run the same `belay checkin arm` again and it succeeds, \(missing.joined(separator: " and ")) will not be alerted"
        case .stateBusy: "nothing was changed; try again in a moment"
        case let .checkinNotRemoved(_, stillArmed, _):
            "run the same `belay checkin arm` again once \(stillArmed.joined(separator: " and "))'s relay can be reached"
        case let .checkinPartlyRenewed(_, missing, _):
            "check in again soon: until it reaches them, \(missing.joined(separator: " and ")) will be alerted at the earlier deadline"
        case .unknownGroup: "`belay group list` lists your groups and rosters"
        case .groupExists: "pick another name"
        case .notGroupAdmin: "ask one of its admins (`belay group members NAME` shows them)"
        case .notGroupMember: "`belay group members NAME` lists its members"
        case .unknownRequest: "`belay read` shows requests with their ids"
        case .claimedByOther: "nothing to do: someone else is with them; escalation has stopped"
        case .unknownIntroduction: "`belay introductions` lists the offers waiting for you"
        case let .relayBusy(_, queued):
            queued > 0
                ? "they will be sent by the next `belay send` or `belay read`; if it keeps happening, someone may be flooding that queue"
                : "try again in a few seconds"
        case let .tokenRequired(_, presented, retry):
            presented ? "ask the relay's operator for a new token, then run `\(retry)`" : "ask its operator for one, then run `\(retry)`"
        case .contactUnderDuress: "reach them another way; pass --force only if you are sure sending is safe for them"
        case .passphraseRequired: "type it at the prompt, or set BELAY_PASSPHRASE for scripts (or use `belay init --no-passphrase`)"
        case .stateDamaged: "nothing was changed; restore BELAY_HOME from a backup if you have one"
        case .unknownContact: "`belay contacts` lists your contacts"
        case .contactExists: "pick another --name, or `belay forget` the old contact first"
        case .relayUnreachable(_, _, let queued):
            queued > 0
                ? "they will be sent by the next `belay send` or `belay read` that reaches the relay" : "check the address and your network, then try again"
        case .proxyUnreachable:
            "start Tor (or your SOCKS5 proxy), or correct --proxy or \(RelayRoute.environmentVariable); Belay never goes around a proxy it was given"
        case .onionNeedsProxy:
            "set \(RelayRoute.environmentVariable)=socks5h://127.0.0.1:9050 (or pass --proxy) to reach onion relays through Tor"
        case .invalidProxy: "write the proxy as socks5h://HOST:PORT; for Tor that is usually socks5h://127.0.0.1:9050 (Tor Browser's: 9150)"
        case .notYetPaired: "they complete the pairing when they next run `belay read`; wait for their first message"
        case .identityChanged(_, true):
            "someone may be impersonating them. Check with them in person; if they really reset their device, `belay forget` them and pair again"
        case .identityChanged(_, false): "compare safety numbers with `belay verify` before trusting this contact"
        default: nil
        }
    }

    public var exitCode: Int32 {
        switch self {
        case .wrongPassphrase, .passphraseRequired, .checkinCodeRequired, .wrongCheckinCode: 3
        case .relayUnreachable, .proxyUnreachable, .onionNeedsProxy, .relayRefused, .checkinPartlyArmed, .checkinPartlyRenewed, .checkinNotRemoved,
            .tokenRequired, .relayBusy:
            4
        case .identityChanged, .relayPolicyInvalid: 5
        case .stateDamaged: 6
        case .claimedByOther: 8
        default: 1
        }
    }

    /// The same error, saying that `queued` messages are kept for later; other errors unchanged.
    func keeping(_ queued: Int) -> ClientError {
        switch self {
        case let .relayUnreachable(relay, why, _): .relayUnreachable(relay: relay, why: why, queued: queued)
        case let .proxyUnreachable(proxy, why, _): .proxyUnreachable(proxy: proxy, why: why, queued: queued)
        case let .onionNeedsProxy(relay, _): .onionNeedsProxy(relay: relay, queued: queued)
        default: self
        }
    }
}
