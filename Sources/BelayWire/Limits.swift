/// Protocol constants of relay protocol version 4 (docs/PROTOCOL.md §7). Changing one of these
/// changes the protocol; tuning knobs live in the relay's configuration instead.
public enum WireLimits {
    /// Noise's maximum message size (Noise §3); bounds every frame either way.
    public static let maxFrameLength = 65535
    /// Bytes of the length prefix in front of every frame.
    public static let frameHeaderLength = 2
    /// Poly1305 tag carried by every transport message.
    public static let tagLength = 16
    /// Largest transport plaintext: a bundle of commands or replies (§2.4).
    public static let maxPlaintextLength = maxFrameLength - tagLength
    /// Commands or replies in one bundle. A client sends a few at a time and the relay answers
    /// one batch per connection; this bounds what one transport message can ask of the relay.
    public static let maxBundleEntries = 64
    /// Largest message body a client may SEND: clients pad to fixed sizes below this.
    public static let maxBodyLength = 16 * 1024
    /// Pushed-but-unacknowledged messages per subscribed queue.
    public static let subscriptionWindow = 16
    /// Bodies in one timed release: one alert per chosen contact.
    public static let maxTimerBodies = 8
    /// A timer shorter than a minute is a mistake, not a check-in.
    public static let minTimerDelaySeconds: UInt32 = 60
    /// A timer longer than 400 days outlives any plan it was armed for.
    public static let maxTimerDelaySeconds: UInt32 = 400 * 24 * 3600
    /// Queue-creation tokens are short secrets, not documents.
    public static let maxTokenLength = 255
}
