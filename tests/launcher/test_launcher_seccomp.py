"""The seccomp programs libseccomp compiles for the launcher, read instruction by instruction.

The app loads a binary tree of rules (`seccomp._as_binary_tree`: libseccomp's optimisation
level 2) rather than libseccomp's default list, because the kernel loads it in half the time.
These tests hold that the tree decides every syscall exactly as the list does, by running both
programs here in a small interpreter of classic BPF (the language seccomp programs are in) for
every syscall number, on this machine's architecture and on a foreign one.
"""

from __future__ import annotations

import errno
import os
import struct

import pytest

from registry.launcher import seccomp

AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
X32_BIT = 0x40000000


def run_bpf(program: bytes, nr: int, arch: int, args: tuple[int, ...] = (0,) * 6) -> int:
    """The action a classic BPF seccomp program returns for struct seccomp_data."""
    data = struct.pack("=IIQ6Q", nr, arch, 0x1000, *args)
    code = [struct.unpack_from("=HBBI", program, offset) for offset in range(0, len(program), 8)]
    a = x = 0
    memory = [0] * 16
    pc = 0
    for _ in range(100_000):  # a seccomp program has no loops: it ends long before
        op, jt, jf, k = code[pc]
        pc += 1
        kind = op & 0x07
        if kind == 0x00:  # LD
            mode = op & 0xE0
            a = (struct.unpack_from("=I", data, k)[0] if mode == 0x20 else
                 memory[k] if mode == 0x60 else k if mode == 0x00 else _unknown(op))
        elif kind == 0x01:  # LDX
            x = memory[k] if op & 0xE0 == 0x60 else k if op & 0xE0 == 0x00 else _unknown(op)
        elif kind == 0x02:  # ST
            memory[k] = a
        elif kind == 0x03:  # STX
            memory[k] = x
        elif kind == 0x04:  # ALU
            operand = x if op & 0x08 else k
            a = _alu(op & 0xF0, a, operand) & 0xFFFFFFFF
        elif kind == 0x05:  # JMP
            operand = x if op & 0x08 else k
            test = op & 0xF0
            if test == 0x00:
                pc += k
                continue
            taken = (a == operand if test == 0x10 else a > operand if test == 0x20 else
                     a >= operand if test == 0x30 else bool(a & operand) if test == 0x40 else
                     _unknown(op))
            pc += jt if taken else jf
        elif kind == 0x06:  # RET
            return a if op & 0x18 == 0x10 else k
        elif kind == 0x07:  # MISC
            if op & 0xF8 == 0x00:
                x = a
            else:
                a = x
    raise AssertionError("the program did not return")


def _alu(operation: int, a: int, operand: int) -> int:
    table = {0x00: lambda: a + operand, 0x10: lambda: a - operand, 0x20: lambda: a * operand,
             0x40: lambda: a | operand, 0x50: lambda: a & operand, 0x60: lambda: a << operand,
             0x70: lambda: a >> operand, 0x80: lambda: -a, 0xA0: lambda: a ^ operand}
    if operation not in table:
        _unknown(0x04 | operation)
    return table[operation]()


def _unknown(op: int) -> int:
    raise AssertionError(f"instruction {op:#x} is not one this interpreter knows")


SPECS = {
    "rkt's default whitelist": seccomp.spec_for({}, set(), False),
    "the whitelist, namespaces allowed": seccomp.spec_for({}, set(), True),
    "a retain set with an errno": seccomp.FilterSpec("retain", ("read", "write", "exit_group"),
                                                     errno.ENOSYS),
    "a remove set that kills": seccomp.FilterSpec("remove", ("socket", "keyctl", "mount"), None),
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_the_tree_decides_every_syscall_as_the_list_does(name: str, monkeypatch) -> None:
    spec = SPECS[name]
    assert spec is not None
    tree = seccomp.compile_filter(spec)
    monkeypatch.setattr(seccomp, "_as_binary_tree", lambda sc, program: None)
    listed = seccomp.compile_filter(spec)
    assert tree != listed  # (the optimisation took: libseccomp >= 2.5, as Debian's)
    arch = AUDIT_ARCH[os.uname().machine]
    decisions = {"allow": 0, "other": 0}
    for nr in [*range(0, 600), *(n | X32_BIT for n in range(0, 600, 7)), 0xFFFFFFFF]:
        for args in ((0,) * 6, (0x7E020000,) + (0,) * 5):  # clone's namespace flags, or none
            expected = run_bpf(listed, nr, arch, args)
            assert run_bpf(tree, nr, arch, args) == expected, (name, nr, args)
            decisions["allow" if expected == 0x7FFF0000 else "other"] += 1
    foreign = 0x40000003 if arch != 0x40000003 else 0xC000003E  # i386 (or x86_64)
    assert run_bpf(tree, 0, foreign) == run_bpf(listed, 0, foreign)
    assert decisions["allow"] and decisions["other"]  # both kinds of answer were checked
