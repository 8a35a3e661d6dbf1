import CQREncode

/// Renders text as a QR code with Unicode half blocks (two modules per character cell), dark on
/// light with a quiet zone, for scanning an invitation off the screen.
enum QRCode {
    static func render(_ text: String) -> String? {
        guard let code = QRcode_encodeString8bit(text, 0, QR_ECLEVEL_L) else { return nil }
        defer { QRcode_free(code) }
        let width = Int(code.pointee.width)
        let data = code.pointee.data!
        let quiet = 2
        func dark(_ x: Int, _ y: Int) -> Bool {
            guard x >= 0, y >= 0, x < width, y < width else { return false }
            return data[y * width + x] & 1 == 1
        }
        var out = ""
        var y = -quiet
        while y < width + quiet {
            for x in -quiet..<(width + quiet) {
                switch (dark(x, y), dark(x, y + 1)) {
                case (false, false): out += "█"
                case (true, false): out += "▄"
                case (false, true): out += "▀"
                case (true, true): out += " "
                }
            }
            out += "\n"
            y += 2
        }
        return out
    }
}
