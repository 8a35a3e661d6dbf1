#!/usr/bin/env python3
"""Interoperability check: an independent Noise implementation (the `noiseprotocol` package from
PyPI), configured only from docs/PROTOCOL.md, talks to a running belayd.

Usage: noise_interop.py path/to/belayd
It starts belayd on a free loopback port, then over raw TCP: sends the preamble, completes
Noise_NK_25519_ChaChaPoly_SHA256 with the relay key from the address, sends PING and NEW, and
checks the replies byte by byte, including two commands in one bundle. Prints 'interop: N passed, 0 failed' on success.
"""
import base64, os, socket, struct, subprocess, sys, tempfile

from noise.connection import NoiseConnection, Keypair

PREAMBLE = b"belay\x00" + struct.pack(">H", 4)          # PROTOCOL.md 2.1
PROTOCOL = b"Noise_NK_25519_ChaChaPoly_SHA256"           # PROTOCOL.md 2.3


def frame(payload):                                     # PROTOCOL.md 2.2
    return struct.pack(">H", len(payload)) + payload


def bundle(*entries):                                   # PROTOCOL.md 2.4
    return b"".join(struct.pack(">H", len(e)) + e for e in entries)


def unbundle(plaintext):
    entries = []
    while plaintext:
        (length,) = struct.unpack(">H", plaintext[:2])
        assert 0 < length <= len(plaintext) - 2, plaintext.hex()
        entries.append(plaintext[2:2 + length])
        plaintext = plaintext[2 + length:]
    return entries


def read_frame(sock):
    header = read_exact(sock, 2)
    (length,) = struct.unpack(">H", header)
    return read_exact(sock, length)


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise RuntimeError("relay closed the connection")
        data += chunk
    return data


def main():
    belayd = sys.argv[1]
    passed = 0
    with tempfile.TemporaryDirectory() as state:
        relay = subprocess.Popen([belayd, "run", "--state-dir", state, "--listen", "127.0.0.1:0"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            address = relay.stdout.readline().strip()      # belay://HOST:PORT/#KEY (PROTOCOL.md 1)
            assert address.startswith("belay://"), address
            hostport, key_b64 = address[len("belay://"):].split("/#")
            host, port = hostport.rsplit(":", 1)
            relay_key = base64.urlsafe_b64decode(key_b64 + "=" * (-len(key_b64) % 4))
            assert len(relay_key) == 32

            noise = NoiseConnection.from_name(PROTOCOL)
            noise.set_as_initiator()
            noise.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, relay_key)
            noise.set_prologue(PREAMBLE)
            noise.start_handshake()

            sock = socket.create_connection((host, int(port)), timeout=10)
            message1 = noise.write_message(b"")
            assert len(message1) == 48
            sock.sendall(PREAMBLE + frame(message1))
            message2 = read_frame(sock)
            assert len(message2) == 48
            assert noise.read_message(message2) == b""
            assert noise.handshake_finished
            passed += 1  # handshake

            # PING (0x01) with request id 7 -> PONG (0x82) with request id 7. PROTOCOL.md 3.
            sock.sendall(frame(noise.encrypt(bundle(bytes([0x01]) + struct.pack(">I", 7)))))
            (reply,) = unbundle(noise.decrypt(read_frame(sock)))
            assert reply == bytes([0x82]) + struct.pack(">I", 7), reply.hex()
            passed += 1  # ping

            # NEW (0x02): a 32-byte recipient key and an empty token -> IDS (0x83) with two ids.
            sock.sendall(frame(noise.encrypt(bundle(bytes([0x02]) + struct.pack(">I", 8) + os.urandom(32) + b"\x00"))))
            (reply,) = unbundle(noise.decrypt(read_frame(sock)))
            assert reply[:5] == bytes([0x83]) + struct.pack(">I", 8) and len(reply) == 5 + 32, reply.hex()
            assert reply[5:21] != reply[21:37]
            passed += 1  # new queue

            # An unknown opcode gets ERR (0xff) UNKNOWN_COMMAND (2) and the connection stays open.
            sock.sendall(frame(noise.encrypt(bundle(bytes([0x70]) + struct.pack(">I", 9)))))
            (reply,) = unbundle(noise.decrypt(read_frame(sock)))
            assert reply == bytes([0xff]) + struct.pack(">I", 9) + struct.pack(">H", 2), reply.hex()
            sock.sendall(frame(noise.encrypt(bundle(bytes([0x01]) + struct.pack(">I", 10)))))
            assert unbundle(noise.decrypt(read_frame(sock))) == [bytes([0x82]) + struct.pack(">I", 10)]
            passed += 1  # typed error, connection kept

            # Two PINGs in one transport message: both answered, in order.
            sock.sendall(frame(noise.encrypt(bundle(bytes([0x01]) + struct.pack(">I", 11),
                                                    bytes([0x01]) + struct.pack(">I", 12)))))
            replies = []
            while len(replies) < 2:
                replies += unbundle(noise.decrypt(read_frame(sock)))
            assert replies == [bytes([0x82]) + struct.pack(">I", 11), bytes([0x82]) + struct.pack(">I", 12)], replies
            passed += 1  # bundle
            sock.close()
        finally:
            relay.terminate()
            relay.wait(timeout=30)
    print(f"interop: {passed} passed, 0 failed")


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # report, never hang
        print(f"interop: failed: {error!r}")
        print("interop: 0 passed, 1 failed")
        sys.exit(1)
