import Logging

/// The relay's store as its configuration names it: the SQLite database in the state
/// directory, or the PostgreSQL server. `serving` false opens it for a tool's own transactions
/// (`belayd token`): on PostgreSQL, without the connection that listens for other frontends.
public enum RelayStores {
    public static func open(_ configuration: RelayConfiguration, state: RelayStateDirectory, logger: Logger, serving: Bool = true) throws -> any QueueStore {
        switch configuration.store {
        case .sqlite: try RelayStore(path: state.databasePath)
        case let .postgres(server): try PostgresQueueStore(server, logger: logger, listening: serving)
        }
    }
}
