#!/usr/bin/env python3
"""Interoperability check: an independent Noise implementation (the `noiseprotocol` package from
PyPI), configured only from docs/PROTOCOL.md, talks to a running belayd.

Usage: noise_interop.py path/to/belayd
It starts belayd on a free loopback port, then over raw TCP: completes
Noise_NK_25519_ChaChaPoly_SHA256 with the relay key from the address (version 5 in the payloads,
the ephemeral key's top bit masked), sends PING and NEW in sealed, padded frames, and checks the
replies byte by byte, including two commands in one bundle and a client of another version. Prints 'interop: N passed, 0 failed' on success.
"""
import base64, os, socket, struct, subprocess, sys, tempfile

from noise.connection import NoiseConnection, Keypair

PROLOGUE = b"belay\x00\x00\x05"                           # PROTOCOL.md 2.1
PROTOCOL = b"Noise_NK_25519_ChaChaPoly_SHA256"           # PROTOCOL.md 2.1
VERSION = 5
MESSAGE_LENGTH = 64                                     # 32-byte key, 16-byte payload, 16-byte tag
BUCKETS = [512, 1536, 4608, 17408, 65535]               # PROTOCOL.md 2.2, sealed body lengths


def mask(message):                                      # PROTOCOL.md 2.1: the key's top bit
    return message[:31] + bytes([message[31] | (os.urandom(1)[0] & 0x80)]) + message[32:]


def unmask(message):
    return message[:31] + bytes([message[31] & 0x7f]) + message[32:]


def frame(noise, plaintext):                            # PROTOCOL.md 2.2: sealed length, sealed body
    bucket = next(b for b in BUCKETS if b >= len(plaintext) + 16)
    padded = plaintext + bytes(bucket - 16 - len(plaintext))
    return noise.encrypt(struct.pack(">H", bucket)) + noise.encrypt(padded)


def bundle(*entries):                                   # PROTOCOL.md 2.4
    return b"".join(struct.pack(">H", len(e)) + e for e in entries)


def unbundle(plaintext):                                # entries, then zeros
    entries = []
    while len(plaintext) >= 2:
        (length,) = struct.unpack(">H", plaintext[:2])
        if length == 0:
            break
        assert length <= len(plaintext) - 2, plaintext.hex()
        entries.append(plaintext[2:2 + length])
        plaintext = plaintext[2 + length:]
    assert entries and plaintext.strip(b"\x00") == b"", plaintext.hex()
    return entries


def read_frame(sock, noise):
    (length,) = struct.unpack(">H", noise.decrypt(read_exact(sock, 18)))
    assert length in BUCKETS, length
    return noise.decrypt(read_exact(sock, length))


def handshake(relay_key, version):
    noise = NoiseConnection.from_name(PROTOCOL)
    noise.set_as_initiator()
    noise.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, relay_key)
    noise.set_prologue(PROLOGUE)
    noise.start_handshake()
    message1 = noise.write_message(struct.pack(">H", version) + bytes(14))
    assert len(message1) == MESSAGE_LENGTH
    return noise, mask(message1)


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

            noise, message1 = handshake(relay_key, VERSION)
            sock = socket.create_connection((host, int(port)), timeout=10)
            sock.sendall(message1)                      # no preamble: the first byte is the key's
            answer = noise.read_message(unmask(read_exact(sock, MESSAGE_LENGTH)))
            assert answer == struct.pack(">H", VERSION) + b"\x00" + bytes(13), answer.hex()
            assert noise.handshake_finished
            passed += 1  # handshake

            # PING (0x01) with request id 7 -> PONG (0x82) with request id 7. PROTOCOL.md 3.
            sock.sendall(frame(noise, bundle(bytes([0x01]) + struct.pack(">I", 7))))
            (reply,) = unbundle(read_frame(sock, noise))
            assert reply == bytes([0x82]) + struct.pack(">I", 7), reply.hex()
            passed += 1  # ping

            # NEW (0x02): a 32-byte recipient key, an empty token and no work (u64 0) -> IDS (0x83)
            # with two ids.
            new = bytes([0x02]) + struct.pack(">I", 8) + os.urandom(32) + b"\x00" + struct.pack(">Q", 0)
            sock.sendall(frame(noise, bundle(new)))
            (reply,) = unbundle(read_frame(sock, noise))
            assert reply[:5] == bytes([0x83]) + struct.pack(">I", 8) and len(reply) == 5 + 32, reply.hex()
            assert reply[5:21] != reply[21:37]
            passed += 1  # new queue

            # An unknown opcode gets ERR (0xff) UNKNOWN_COMMAND (2) and the connection stays open.
            sock.sendall(frame(noise, bundle(bytes([0x70]) + struct.pack(">I", 9))))
            (reply,) = unbundle(read_frame(sock, noise))
            assert reply == bytes([0xff]) + struct.pack(">I", 9) + struct.pack(">H", 2), reply.hex()
            sock.sendall(frame(noise, bundle(bytes([0x01]) + struct.pack(">I", 10))))
            assert unbundle(read_frame(sock, noise)) == [bytes([0x82]) + struct.pack(">I", 10)]
            passed += 1  # typed error, connection kept

            # Two PINGs in one transport message: both answered, in order.
            sock.sendall(frame(noise, bundle(bytes([0x01]) + struct.pack(">I", 11),
                                             bytes([0x01]) + struct.pack(">I", 12))))
            replies = []
            while len(replies) < 2:
                replies += unbundle(read_frame(sock, noise))
            assert replies == [bytes([0x82]) + struct.pack(">I", 11), bytes([0x82]) + struct.pack(">I", 12)], replies
            passed += 1  # bundle
            sock.close()

            # A client of another version is told the relay's, inside the handshake, then closed.
            other, message1 = handshake(relay_key, 9)
            sock = socket.create_connection((host, int(port)), timeout=10)
            sock.sendall(message1)
            answer = other.read_message(unmask(read_exact(sock, MESSAGE_LENGTH)))
            assert answer == struct.pack(">H", VERSION) + b"\x01" + bytes(13), answer.hex()
            assert sock.recv(1) == b""
            passed += 1  # version mismatch, said inside the encrypted channel
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
