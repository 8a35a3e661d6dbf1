/// Why a Noise operation failed. None of these carry secret material.
public enum NoiseError: Error, Equatable, CustomStringConvertible {
    case messageTooLong(Int)
    case messageTooShort
    case decryptionFailed
    case nonceExhausted
    case invalidKey
    case wrongTurn
    case handshakeComplete
    case missingKey(String)

    public var description: String {
        switch self {
        case let .messageTooLong(n): "Noise message of \(n) bytes exceeds 65535"
        case .messageTooShort: "Noise message is too short"
        case .decryptionFailed: "Noise message failed to decrypt"
        case .nonceExhausted: "Noise nonce space exhausted"
        case .invalidKey: "Noise peer key is invalid"
        case .wrongTurn: "Noise message out of turn"
        case .handshakeComplete: "Noise handshake already complete"
        case let .missingKey(which): "Noise handshake is missing the \(which) key"
        }
    }
}
