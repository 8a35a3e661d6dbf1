/// Everything a client may ask of a relay (docs/PROTOCOL.md §3.1). One case per command.
public enum RelayCommand: Equatable, Sendable {
    case ping
    case new(NewQueue)
    case auth(Auth)
    case key(recipient: EntityID, senderKey: [UInt8])
    case send(sender: EntityID, body: [UInt8])
    case subscribe(recipient: EntityID)
    case ack(recipient: EntityID, seq: UInt64)
    case get(recipient: EntityID)
    case delete(recipient: EntityID)
    case timerSet(TimerSet)
    case timerRenew(timer: EntityID, delay: UInt32)
    case timerCancel(timer: EntityID)
    /// Asks for the relay's signed policy (docs/PROTOCOL.md §3.4).
    case info

    public struct NewQueue: Equatable, Sendable {
        public var recipientKey: [UInt8]
        public var token: [UInt8]
        /// A proof of work (`CreationWork`), 0 when the relay asks for none.
        public var work: UInt64
        public init(recipientKey: [UInt8], token: [UInt8] = [], work: UInt64 = 0) {
            self.recipientKey = recipientKey
            self.token = token
            self.work = work
        }
    }

    public struct Auth: Equatable, Sendable {
        public var role: AuthRole
        public var entity: EntityID
        public var signature: [UInt8]
        public init(role: AuthRole, entity: EntityID, signature: [UInt8]) {
            self.role = role
            self.entity = entity
            self.signature = signature
        }
    }

    public struct TimerSet: Equatable, Sendable {
        public struct Entry: Equatable, Sendable {
            public var sender: EntityID
            public var body: [UInt8]
            public init(sender: EntityID, body: [UInt8]) {
                self.sender = sender
                self.body = body
            }
        }
        public var timerKey: [UInt8]
        public var delay: UInt32
        /// A timer this connection has proven, cancelled atomically with storing the new one.
        public var replaces: EntityID?
        public var entries: [Entry]
        /// An organisation token, which spares a new timer the proof of work (empty: none).
        public var token: [UInt8]
        /// A proof of work (`CreationWork`) for a new timer, 0 when the relay asks for none.
        public var work: UInt64
        public init(timerKey: [UInt8], delay: UInt32, replaces: EntityID? = nil, entries: [Entry], token: [UInt8] = [], work: UInt64 = 0) {
            self.timerKey = timerKey
            self.delay = delay
            self.replaces = replaces
            self.entries = entries
            self.token = token
            self.work = work
        }
    }

    var opcode: UInt8 {
        switch self {
        case .ping: 0x01
        case .new: 0x02
        case .auth: 0x03
        case .key: 0x04
        case .send: 0x05
        case .subscribe: 0x06
        case .ack: 0x07
        case .get: 0x08
        case .delete: 0x09
        case .timerSet: 0x0a
        case .timerRenew: 0x0b
        case .timerCancel: 0x0c
        case .info: 0x20
        }
    }
}

/// Which key an AUTH proves (docs/PROTOCOL.md §3.1).
public enum AuthRole: UInt8, Sendable, Hashable {
    case recipient = 1
    case sender = 2
    case timer = 3
}

/// Everything a relay may answer or push (docs/PROTOCOL.md §3.2).
public enum RelayReply: Equatable, Sendable {
    case ok
    case pong
    case ids(recipient: EntityID, sender: EntityID)
    case message(Delivery)
    case noMessage
    case timer(id: EntityID, deadline: UInt64)
    case end(recipient: EntityID)
    /// The relay's policy document (`RelayPolicy`, exactly its encoded length) and signature.
    case policy(document: [UInt8], signature: [UInt8])
    case error(RelayErrorCode)
    /// ERR `WORK` (code 16): NEW or TSET needs a proof of work of `bits` leading zero bits.
    case workRequired(bits: UInt8)

    public struct Delivery: Equatable, Sendable {
        public var recipient: EntityID
        public var seq: UInt64
        public var body: [UInt8]
        public init(recipient: EntityID, seq: UInt64, body: [UInt8]) {
            self.recipient = recipient
            self.seq = seq
            self.body = body
        }
    }

    var opcode: UInt8 {
        switch self {
        case .ok: 0x81
        case .pong: 0x82
        case .ids: 0x83
        case .message: 0x84
        case .noMessage: 0x85
        case .timer: 0x86
        case .end: 0x87
        case .policy: 0xa0
        case .error, .workRequired: 0xff
        }
    }
}

/// Typed error replies (docs/PROTOCOL.md §3.3). None of them closes the connection.
public enum RelayErrorCode: UInt16, Error, Sendable, CaseIterable, CustomStringConvertible {
    case malformed = 1
    case unknownCommand = 2
    case auth = 3
    case noQueue = 4
    case noMessage = 5
    case noTimer = 6
    case quota = 7
    case tooLarge = 8
    case rate = 9
    case token = 10
    case conflict = 11
    case limit = 12
    case delay = 13
    case unavailable = 14
    case storeFull = 15

    /// The code's name in docs/PROTOCOL.md §3.3 (`NO_TIMER`), for logs and metrics.
    public var name: String {
        switch self {
        case .malformed: "MALFORMED"
        case .unknownCommand: "UNKNOWN_COMMAND"
        case .auth: "AUTH"
        case .noQueue: "NO_QUEUE"
        case .noMessage: "NO_MESSAGE"
        case .noTimer: "NO_TIMER"
        case .quota: "QUOTA"
        case .tooLarge: "TOO_LARGE"
        case .rate: "RATE"
        case .token: "TOKEN"
        case .conflict: "CONFLICT"
        case .limit: "LIMIT"
        case .delay: "DELAY"
        case .unavailable: "UNAVAILABLE"
        case .storeFull: "STORE_FULL"
        }
    }

    public var description: String {
        switch self {
        case .malformed: "the relay could not parse the command"
        case .unknownCommand: "the relay does not know this command"
        case .auth: "not authorised for this queue or timer"
        case .noQueue: "no such queue on this relay"
        case .noMessage: "no such message in the queue"
        case .noTimer: "no such timer on this relay"
        case .quota: "the queue is full"
        case .tooLarge: "the message is empty or too large"
        case .rate: "too many commands; slow down"
        case .token: "this relay requires a valid queue-creation token"
        case .conflict: "the queue is already secured with another key"
        case .limit: "a relay limit was reached"
        case .delay: "timer delay out of range (60 s to 400 days)"
        case .unavailable: "the relay is unavailable; try again later"
        case .storeFull: "the relay's storage is full; try again later"
        }
    }
}
