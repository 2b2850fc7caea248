"""Can rkt 1.x read this key? The rules of the golang.org/x/crypto/openpgp copy rkt vendors.

rkt v1.30.0 (and actool and other appc clients of its time) vendor an x/crypto/openpgp that:
- parses v4 key packets of RSA (1, 2, 3), ElGamal (16), DSA (17), ECDH (18) and ECDSA (19),
  the elliptic ones on NIST P-256/P-384/P-521 only (no EdDSA, no Curve25519);
- parses v4 signatures made with RSA, DSA or ECDSA and a hash of MD5, SHA-1, RIPEMD-160,
  SHA-224/256/384/512;
- knows signature subpackets 2, 3, 9, 11, 16, 21, 22, 25, 27, 29 and fails on any OTHER one
  marked critical, in the hashed or unhashed area (e.g. Sequoia's critical back-signature, 32).

A key that breaks a rule is skipped whole by that library's ReadKeyRing (so `rkt trust` fails
when it is the only key). pysequoia splits the packets; this module only reads the few header
bytes and the subpacket areas those rules are about.
"""

from __future__ import annotations

from pysequoia.packet import PacketPile, Tag

from .keys import PublicKey

OLD_KEY_ALGORITHMS = {1: "RSA", 2: "RSA", 3: "RSA", 16: "ElGamal", 17: "DSA", 18: "ECDH",
                      19: "ECDSA"}
OLD_SIGNATURE_ALGORITHMS = {1, 3, 17, 19}
OLD_HASHES = {1, 2, 3, 8, 9, 10, 11}
OLD_SUBPACKETS = frozenset({2, 3, 9, 11, 16, 21, 22, 25, 27, 29})
_OLD_CURVES = {
    bytes.fromhex("2a8648ce3d030107"): "P-256",
    bytes.fromhex("2b81040022"): "P-384",
    bytes.fromhex("2b81040023"): "P-521",
}
_ALGORITHM_NAMES = {22: "EdDSA", 27: "Ed25519", 28: "Ed448", 25: "X25519", 26: "X448"}
_CURVE_NAMES = {bytes.fromhex("2b060104019755010501"): "Curve25519",
                bytes.fromhex("2b06010401da470f01"): "Ed25519"}


def _subpackets(area: bytes) -> list[tuple[int, bool]]:
    """(type, critical) of every subpacket in one area (RFC 4880, 5.2.3.1)."""
    found: list[tuple[int, bool]] = []
    at = 0
    while at < len(area):
        first = area[at]
        if first < 192:
            length, at = first, at + 1
        elif first < 255:
            length, at = ((first - 192) << 8) + area[at + 1] + 192, at + 2
        else:
            length, at = int.from_bytes(area[at + 1:at + 5], "big"), at + 5
        if length == 0 or at + length > len(area):
            raise ValueError("truncated signature subpacket")
        found.append((area[at] & 0x7F, bool(area[at] & 0x80)))
        at += length
    return found


def _signature_problems(body: bytes, where: str) -> list[str]:
    if not body or body[0] != 4:
        return [f"{where}: a version {body[0] if body else '?'} signature (only v4 is read)"]
    _, algorithm, digest = body[1], body[2], body[3]
    problems = []
    if algorithm not in OLD_SIGNATURE_ALGORITHMS:
        problems.append(f"{where}: made with {_ALGORITHM_NAMES.get(algorithm, algorithm)} "
                        "(only RSA, DSA and ECDSA signatures are read)")
    if digest not in OLD_HASHES:
        problems.append(f"{where}: hash algorithm {digest} is unknown to it")
    hashed_length = int.from_bytes(body[4:6], "big")
    hashed = body[6:6 + hashed_length]
    rest = body[6 + hashed_length:]
    unhashed = rest[2:2 + int.from_bytes(rest[0:2], "big")]
    try:
        for area in (hashed, unhashed):
            for kind, critical in _subpackets(area):
                if critical and kind not in OLD_SUBPACKETS:
                    problems.append(f"{where}: critical subpacket {kind} is unknown to it")
    except (ValueError, IndexError):
        problems.append(f"{where}: malformed subpackets")
    return problems


def _key_problems(body: bytes, role: str) -> list[str]:
    if not body or body[0] != 4:
        return [f"{role}: a version {body[0] if body else '?'} key (only v4 is read)"]
    algorithm = body[5]
    if algorithm not in OLD_KEY_ALGORITHMS:
        return [f"{role}: {_ALGORITHM_NAMES.get(algorithm, f'algorithm {algorithm}')} "
                "(it reads RSA, DSA, ElGamal, ECDSA and ECDH)"]
    if algorithm in (18, 19):
        oid = body[7:7 + body[6]]
        if oid not in _OLD_CURVES:
            return [f"{role}: {OLD_KEY_ALGORITHMS[algorithm]} on {_CURVE_NAMES.get(oid, oid.hex())} "
                    "(it knows P-256, P-384 and P-521 only)"]
    return []


def old_client_problems(key: PublicKey) -> list[str]:
    """Why rkt 1.x's OpenPGP cannot read this key; empty when it can."""
    problems: list[str] = []
    role = "primary key"
    count = 0
    for packet in PacketPile.from_bytes(bytes(key.cert)):
        if packet.tag in (Tag.PublicKey, Tag.PublicSubkey):
            if packet.tag == Tag.PublicSubkey:
                count += 1
                role = f"subkey {count}"
            problems += _key_problems(packet.body or b"", role)
        elif packet.tag == Tag.Signature:
            problems += _signature_problems(packet.body or b"", f"signature on the {role}")
    return list(dict.fromkeys(problems))


def readable_by_old_clients(key: PublicKey) -> bool:
    return not old_client_problems(key)
