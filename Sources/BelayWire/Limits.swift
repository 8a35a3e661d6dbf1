/// Protocol constants of relay protocol version 5 (docs/PROTOCOL.md §7). Changing one of these
/// changes the protocol; tuning knobs live in the relay's configuration instead.
public enum WireLimits {
    /// Noise's maximum message size (Noise §3); bounds every frame body either way.
    public static let maxFrameLength = 65535
    /// Poly1305 tag carried by every transport message.
    public static let tagLength = 16
    /// The sealed length in front of every frame body: a u16 encrypted on its own (§2.2), so
    /// nothing on the wire is in the clear.
    public static let frameHeaderLength = 2 + tagLength
    /// The only lengths a frame body may have (ciphertext, tag included): every bundle is
    /// padded to the smallest that holds it, so an observer learns only the bucket. Each is
    /// roughly a message body bucket (256, 1024, 4096, 16000 bytes; §8.3) plus room for its
    /// command's fields and a few small replies, and the last is Noise's maximum.
    public static let frameBodyBuckets = [512, 1536, 4608, 17408, maxFrameLength]
    /// Largest transport plaintext: a bundle of commands or replies and its padding (§2.4).
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
    /// The most leading zero bits of work a relay may ask for: about 2^26 hashes, half a minute
    /// on a slow phone. A client refuses to start on more (a hostile relay could ask for years).
    public static let maxWorkBits: UInt8 = 26
}
