#!/usr/bin/env python3
"""Independent check of credentials.json, written from docs/protocol.md only.

Needs Python 3.9+ and the `cryptography` package. Exit code 0 when every
vector decides as recorded. Run: python3 verify_vectors.py [credentials.json]
"""
import hashlib
import json
import struct
import sys
import uuid

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

B45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
GRACE = 60


def b45decode(s):
    out = bytearray()
    vals = [B45.index(c) for c in s]  # ValueError outside the alphabet
    for i in range(0, len(vals) - len(vals) % 3, 3):
        n = vals[i] + vals[i + 1] * 45 + vals[i + 2] * 2025
        if n > 0xFFFF:
            raise ValueError("triple > 65535")
        out += n.to_bytes(2, "big")
    rest = vals[len(vals) - len(vals) % 3:]
    if len(rest) == 2:
        n = rest[0] + rest[1] * 45
        if n > 0xFF:
            raise ValueError("pair > 255")
        out.append(n)
    elif len(rest) == 1:
        raise ValueError("dangling character")
    return bytes(out)


def parse_credential(text):
    if not text.startswith("TK1:"):
        raise ValueError("prefix")
    b = b45decode(text[4:])
    if len(b) < 52 + 64 or b[0:2] != b"TK" or b[2] != 1:
        raise ValueError("header")
    flags = b[3]
    if flags & ~0b11:
        raise ValueError("flags")
    c = {
        "key_id": b[4:12],
        "event_id": uuid.UUID(bytes=b[12:28]),
        "ticket_id": uuid.UUID(bytes=b[28:44]),
        "generation": struct.unpack(">H", b[44:46])[0],
        "tier": struct.unpack(">H", b[46:48])[0],
        "zones": struct.unpack(">I", b[48:52])[0],
        "window": None,
    }
    pos = 52
    if flags & 1:
        nb, na = struct.unpack(">QQ", b[pos:pos + 16])
        if len(b[pos:pos + 16]) != 16 or na < nb:
            raise ValueError("window")
        c["window"] = (nb, na)
        pos += 16
    if flags & 2:
        pos += 32
    if len(b) != pos + 64:
        raise ValueError("length")
    c["signed"], c["signature"] = b[:pos], b[pos:]
    return c


def parse_cert(b, root):
    assert len(b) == 139 and b[0:2] == b"KC" and b[2] == 1
    root.verify(b[75:], b[:75])
    assert b[67:75] == hashlib.sha256(root.public_bytes_raw()).digest()[:8]
    nb, na = struct.unpack(">QQ", b[51:67])
    return {"event_id": uuid.UUID(bytes=b[3:19]), "key": b[19:51], "window": (nb, na)}


def decide(v):
    root = Ed25519PublicKey.from_public_bytes(bytes.fromhex(v["root_public_key_hex"]))
    cert = parse_cert(bytes.fromhex(v["key_certificate_hex"]), root)
    assert cert["key"].hex() == v["public_key_hex"]
    now, event = v["now_unix"], uuid.UUID(v["event_id"])
    try:
        c = parse_credential(v["qr_text"])
    except (ValueError, struct.error):
        return "malformed"
    # The signature is checked before anything the credential claims.
    if c["key_id"] != hashlib.sha256(cert["key"]).digest()[:8]:
        return "unknown_key"
    try:
        Ed25519PublicKey.from_public_bytes(cert["key"]).verify(c["signature"], c["signed"])
    except InvalidSignature:
        return "bad_signature"
    if c["event_id"] != event:
        return "wrong_event"
    if cert["event_id"] != event:
        return "unknown_key"
    if not cert["window"][0] <= now <= cert["window"][1]:
        return "key_not_valid"
    listed = {uuid.UUID(t): 0 for t in v["revoked_ticket_ids"]}
    superseded = {uuid.UUID(t): g for t, g in v["superseded"]}
    if c["ticket_id"] in listed:
        return "revoked"
    if c["ticket_id"] in superseded and c["generation"] < superseded[c["ticket_id"]]:
        return "superseded"
    if c["window"]:
        if now + GRACE < c["window"][0]:
            return "not_yet_valid"
        if now > c["window"][1] + GRACE:
            return "expired"
    zones = 1 if c["ticket_id"] in superseded else c["zones"]
    if v["gate_zone"] is not None and not zones & (1 << v["gate_zone"]):
        return "wrong_zone"
    return None


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else __file__.replace("verify_vectors.py", "credentials.json")
    failures = 0
    vectors = json.load(open(path))
    for v in vectors:
        reason = decide(v)
        got = ("admit" if reason is None else "reject", reason)
        want = (v["expected"], v["reason"])
        if got != want:
            failures += 1
            print(f"MISMATCH {v['description']}: got {got}, want {want}")
    print(f"{len(vectors) - failures}/{len(vectors)} vectors agree")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
