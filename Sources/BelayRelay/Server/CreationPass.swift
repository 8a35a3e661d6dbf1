import BelayWire

/// What lets a NEW, or a TSET that makes a new timer, go ahead, decided on the connection
/// before the core sees it (docs/PROTOCOL.md §5).
enum CreationPass: Equatable {
    /// Open creation, or one of the configured `creation_tokens`: the source's creation rate
    /// applies.
    case open
    /// A proof of work for this session and command. The source's creation rate does not
    /// apply: through Tor a source is many people, and the work is what each creation costs.
    case paid
    /// A member token, which the core checks against the store (for NEW, counting a queue
    /// against its quota). The source's creation rate does not apply either: the quota bounds
    /// it. If the token does not pass, the core answers `refusal`.
    case memberToken(MemberTokenCheck)
    case refused(RelayReply)
}

extension ConnectionStateMachine.Session {
    /// NEW (`queue`) on a relay that requires tokens needs one; anywhere else, with
    /// `creation_pow_bits` set, a NEW or new TSET needs a valid token or a proof of work. On a
    /// relay with neither, tokens are not looked at: a client keeping a token for a relay that no
    /// longer needs one is not refused for it.
    mutating func creationPass(
        for command: RelayCommand, token: [UInt8], work: UInt64, queue: Bool, settings: ConnectionSettings
    ) -> CreationPass {
        let configuration = settings.configuration
        if queue, configuration.requiresCreationToken {
            guard !token.isEmpty else { return .refused(.error(.token)) }
            if configuration.isConfiguredToken(token) { return .open }
            guard let hash = try? MemberToken.hash(token) else { return .refused(.error(.token)) }
            return .memberToken(MemberTokenCheck(hash: hash, refusal: .error(.token)))
        }
        let bits = configuration.creationWorkBits
        guard bits > 0 else { return .open }
        if !token.isEmpty, configuration.isConfiguredToken(token) { return .open }
        if pays(for: command, work: work, bits: bits) { return .paid }
        if !token.isEmpty, let hash = try? MemberToken.hash(token) {
            return .memberToken(MemberTokenCheck(hash: hash, refusal: .workRequired(bits: bits)))
        }
        return .refused(.workRequired(bits: bits))
    }

    /// Whether `work` solves this session's puzzle for `command` with `bits` zero bits, and has
    /// not paid for a command on this connection before (each NEW and TSET counts against the
    /// connection's caps, which bound what is remembered).
    private mutating func pays(for command: RelayCommand, work: UInt64, bits: UInt8) -> Bool {
        guard let challenge = try? CreationWork.challenge(sessionHash: transport.handshakeHash, command: command),
            let proof = try? CreationWork.proof(challenge: challenge, work: work),
            CreationWork.leadingZeroBits(proof) >= Int(bits)
        else { return false }
        return workPaid.insert(proof).inserted
    }
}
