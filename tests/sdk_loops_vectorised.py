#!/usr/bin/env python3
"""Every AVX2 variant of the SDK's CPU loops computes on ymm registers (eight lanes).

The loops are built for AVX-512, AVX2 and the baseline (target_clones); the CPU picks one at
load time, so a machine with AVX-512 never runs the AVX2 variant that AVX2-only CPUs (AMD EPYC
before Zen 4) run. Once, GCC vectorised the softmax and SwiGLU loops only for AVX-512 and the
AVX2 variants were scalar, 2-4x slower, with every test passing. This reads the built library.

usage: sdk_loops_vectorised.py LIBXLHOST_SDK.so
"""
import re
import subprocess
import sys


def computes_on_ymm(line):
    """An instruction that computes on a ymm register: not a move, a broadcast or a zeroing
    xor, which a scalar loop's inlined memcpy or memset may use too."""
    fields = line.split("\t")  # "  3f343:", "vpbroadcastd %xmm4,%ymm4"
    if len(fields) < 2:
        return False
    mnemonic, _, operands = fields[1].split("#")[0].strip().partition(" ")
    if "%ymm" not in operands:
        return False
    operands = operands.split(",")
    if mnemonic.startswith("vmov") or "broadcast" in mnemonic or mnemonic == "vzeroupper":
        return False
    return not ("xor" in mnemonic and len(set(o.strip() for o in operands)) == 1)


def main(lib):
    symbols = subprocess.run(["nm", "-S", "-C", lib], check=True, capture_output=True, text=True).stdout
    clones = []
    for line in symbols.splitlines():
        m = re.match(r"([0-9a-f]+) ([0-9a-f]+) [tT] (.*) \[clone \.avx2\]$", line)
        if m:
            name = re.sub(r"\(anonymous namespace\)::", "", m[3]).split("(")[0]
            clones.append((int(m[1], 16), int(m[2], 16), name))
    if not clones:
        print(f"{lib}: no AVX2 variants found (XLHOST_CPU_VARIANTS not applied?)")
        return 1
    scalar = []
    for start, size, name in clones:
        code = subprocess.run(["objdump", "-d", "--no-show-raw-insn", f"--start-address={start}",
                               f"--stop-address={start + size}", lib], check=True, capture_output=True,
                              text=True).stdout
        packed = sum(1 for line in code.splitlines() if computes_on_ymm(line))
        print(f"{packed:5d} instructions computing on ymm  {name}")
        if packed == 0:
            scalar.append(name)
    if scalar:
        print("\nscalar AVX2 variants (GCC did not vectorise their loops):\n  " + "\n  ".join(scalar))
        return 1
    print(f"\n{len(clones)} AVX2 variants, all vectorised")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
