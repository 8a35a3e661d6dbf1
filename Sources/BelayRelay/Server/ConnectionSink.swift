import NIOCore

/// How the core reaches one connection. The handler is not Sendable (it lives on its event
/// loop); this is, and touches the handler only on that loop. The core knows a connection by
/// its sink's identity, so a connection has one sink for its whole life. The sink holds the
/// handler weakly: the core may keep a sink after its channel is gone.
final class ConnectionSink: CoreSink {
    private struct Reference {
        weak var handler: ConnectionHandler?
    }

    let eventLoop: EventLoop
    private let reference: NIOLoopBoundBox<Reference?>

    init(eventLoop: EventLoop) {
        self.eventLoop = eventLoop
        reference = .makeEmptyBox(eventLoop: eventLoop)
    }

    /// Called on `eventLoop` when the handler joins its pipeline.
    func attach(_ handler: ConnectionHandler) {
        reference.value = Reference(handler: handler)
    }

    /// Called on `eventLoop`.
    func receive(_ outcomes: [CoreOutcome]) {
        reference.value?.handler?.receive(outcomes)
    }
}
