import BelaySodium

/// How a check-in's contacts follow changes of the check-in code's tag without the person's
/// device keeping it (docs/PROTOCOL.md §8.5). Each change of codes adds a link: the new check-in
/// code's tag, sealed under a key derived from the tag of the code entered to make the change. A
/// contact walks the links from the tag it holds; a change made with the duress code is sealed
/// under the duress code's tag, which no contact holds, so it does not open and the contact stays
/// with the tag it had. The device stores only the links. (The first codes reach each contact in
/// a sealed box instead: a link under a known key would give the tag to anyone.)
public enum TagChain {
    public static let maxLinks = 8
    public static let linkLength = XChaChaPoly.nonceLength + CheckinNotice.tagLength + XChaChaPoly.tagLength
    static let label = Array("belay check-in tag link v1".utf8)

    static func key(_ tag: [UInt8]) throws -> SecureBytes {
        try SecureBytes(copying: try BLAKE2b.hash(label + tag, outputLength: XChaChaPoly.keyLength))
    }

    /// A link from `from` (the tag of the code entered) to `to` (the new check-in code's tag).
    public static func link(from: [UInt8], to: [UInt8], checkin: [UInt8], random: some RandomSource = SystemRandom()) throws -> [UInt8] {
        try XChaChaPoly.sealWithNonce(key: try key(from), plaintext: to, ad: label + checkin, random: random)
    }

    /// The walk from `held` through `links`, in order, each link taken if it opens under the
    /// current tag. Returns the final tag and the tag under which the last link taken was opened
    /// (nil if none was).
    public static func walk(from held: [UInt8], links: [[UInt8]], checkin: [UInt8]) -> (final: [UInt8], lastKey: [UInt8]?) {
        var current = held
        var lastKey: [UInt8]?
        for link in links where link.count == linkLength {
            guard let k = try? key(current),
                let next = try? XChaChaPoly.openWithNonce(key: k, sealed: link, ad: label + checkin),
                next.count == CheckinNotice.tagLength
            else { continue }
            lastKey = current
            current = next
        }
        return (current, lastKey)
    }
}
