import BelayClient
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Talking to the person at the terminal: prompts without echo, confirmations, and the output
/// rules (docs/CLI.md): results to stdout, everything else to stderr as `belay: …`.
enum Terminal {
    static var stdoutIsTerminal: Bool { isatty(STDOUT_FILENO) == 1 }

    /// Whether a person can be asked: there is a controlling terminal to ask on. Scripts (and
    /// tests) have none.
    static var isInteractive: Bool {
        let fd = open("/dev/tty", O_RDWR | O_NOCTTY)
        guard fd >= 0 else { return false }
        close(fd)
        return true
    }

    /// Columns of the terminal on stdout, or nil if unknown.
    static var columns: Int? {
        var size = winsize()
        guard ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return nil }
        return Int(size.ws_col)
    }

    static func error(_ message: String) {
        FileHandle.standardError.write(Data("belay: \(message)\n".utf8))
    }

    static func hint(_ message: String) {
        FileHandle.standardError.write(Data("belay: hint: \(message)\n".utf8))
    }

    static func note(_ message: String) { error(message) }

    /// Reads a line from the controlling terminal with echo off. Nil when there is no terminal.
    static func secret(prompt: String) -> [UInt8]? {
        let fd = open("/dev/tty", O_RDWR | O_NOCTTY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var original = termios()
        guard tcgetattr(fd, &original) == 0 else { return nil }
        var silent = original
        silent.c_lflag &= ~tcflag_t(ECHO)
        _ = prompt.withCString { write(fd, $0, strlen($0)) }
        guard tcsetattr(fd, TCSAFLUSH, &silent) == 0 else { return nil }
        defer {
            _ = tcsetattr(fd, TCSAFLUSH, &original)
            _ = "\n".withCString { write(fd, $0, 1) }
        }
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while read(fd, &byte, 1) == 1, byte != 0x0a, line.count < 4096 {
            if byte != 0x0d { line.append(byte) }
        }
        return line
    }

    /// A yes/no question on the terminal; without a terminal the answer is no.
    static func confirm(_ question: String, expect word: String) -> Bool {
        let fd = open("/dev/tty", O_RDWR | O_NOCTTY)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        _ = question.withCString { write(fd, $0, strlen($0)) }
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while read(fd, &byte, 1) == 1, byte != 0x0a, line.count < 256 { line.append(byte) }
        return String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespaces) == word
    }

    /// A secret from the environment variable `name` (for scripts), else typed at a prompt
    /// without echo; nil when neither is possible.
    static func secret(environment name: String, prompt: String) -> [UInt8]? {
        if let value = ProcessInfo.processInfo.environment[name] { return Array(value.utf8) }
        return secret(prompt: prompt)
    }

    /// The passphrase for an existing state: BELAY_PASSPHRASE, else a prompt.
    static func passphrase() throws -> [UInt8]? {
        guard let pass = secret(environment: "BELAY_PASSPHRASE", prompt: "Passphrase: ") else { throw ClientError.passphraseRequired }
        return pass
    }
}

/// Prints one JSON object per line.
enum JSONLines {
    static func print<T: Encodable>(_ value: T) {
        Swift.print(line(value))
    }

    /// One object, keys sorted, on one line.
    static func line<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(value), let line = String(data: data, encoding: .utf8) else { return "{}" }
        return line
    }
}
