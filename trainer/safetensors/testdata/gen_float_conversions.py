#!/usr/bin/env python3
"""Writes float_conversions.json, the fixture for TestFloatConversionsMatchPyTorch.

Reference narrowing comes from independent implementations: PyTorch (tensor.to(bfloat16))
for BF16 and numpy (astype(float16)) for F16, both round-to-nearest-even. NaN inputs are
left out on purpose: what NaN bits a narrowing produces differs between (and within) these
libraries, so the Go tests pin the package's own documented NaN choice instead.

Run from this directory with Debian's python3 (python3-torch, python3-numpy):
    /usr/bin/python3 gen_float_conversions.py
"""
import json
import struct

import numpy as np
import torch

FIXTURE_VERSION = 1


def f32(bits):
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def main():
    rng = np.random.default_rng(20240611)
    specials = [
        0x00000000, 0x80000000,              # ±0
        0x3F800000, 0xBF800000,              # ±1
        0x40490FDB,                          # pi
        0x7F800000, 0xFF800000,              # ±Inf
        0x7F7FFFFF, 0xFF7FFFFF,              # ±max float32 (BF16 rounds to Inf)
        0x00000001, 0x80000001, 0x007FFFFF,  # float32 subnormals
        0x00800000,                          # smallest float32 normal
        0x3F808000, 0x3F818000,              # BF16 ties: round down / up to even
        0x3F808001, 0x3F807FFF,              # just above / below a BF16 tie
        0x7F7F8000, 0x7F7F7FFF,              # BF16 overflow boundary
        0x477FE000, 0x477FEFFF, 0x477FF000,  # 65504, just below 65520 (F16 max), 65520 (Inf)
        0xC77FF000,                          # -65520 -> -Inf
        0x33800000,                          # 2^-24, smallest F16 subnormal
        0x33000000, 0x33000001, 0x33400000,  # 2^-25 (tie -> 0), just above, 1.5*2^-25
        0x32800000,                          # 2^-26 -> 0
        0x387FC000, 0x387FE000, 0x387FF000,  # near the largest F16 subnormal / smallest normal
        0x38800000,                          # 2^-14, smallest F16 normal
        0x3A001000, 0x3A003000,              # F16 subnormal ties
        0xB3C00000,                          # -1.5*2^-24
    ]
    randoms = [int(x) for x in rng.integers(0, 2**32, size=400, dtype=np.uint64)]
    # Concentrate some inputs on F16's range, where its rounding cases live.
    for e in range(100, 145):
        for _ in range(4):
            randoms.append((int(rng.integers(0, 2)) << 31) | (e << 23) | int(rng.integers(0, 2**23)))
    inputs = []
    for b in specials + randoms:
        if np.isnan(f32(b)) or b in inputs:
            continue
        inputs.append(b)

    arr = np.array(inputs, dtype=np.uint32).view(np.float32)
    with np.errstate(over="ignore", under="ignore"):
        f16 = arr.astype(np.float16).view(np.uint16)
    bf16 = torch.from_numpy(arr.copy()).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)

    narrow = [
        {"f32": f"{b:08x}", "bf16": f"{int(x):04x}", "f16": f"{int(y):04x}"}
        for b, x, y in zip(inputs, bf16, f16)
    ]
    # Widening: a spread of 16-bit patterns (every exponent, subnormals, ±Inf), NaN excluded.
    halves = sorted({0x0000, 0x8000, 0x0001, 0x03FF, 0x0400, 0x7BFF, 0x7C00, 0xFC00, 0x3C00, 0xC000,
                     0x0080, 0x7F7F, 0xFF80, 0x7F80, 0x3F80}
                    | {int(x) for x in rng.integers(0, 2**16, size=200)})
    h = np.array(halves, dtype=np.uint16)
    f16_wide = h.view(np.float16).astype(np.float32).view(np.uint32)
    bf16_wide = torch.from_numpy(h.view(np.int16).copy()).view(torch.bfloat16).to(torch.float32).numpy().view(np.uint32)
    widen = []
    for b, x, y in zip(halves, f16_wide, bf16_wide):
        e = {"bits": f"{b:04x}"}
        if not np.isnan(h[halves.index(b)].view(np.float16)):
            e["f16_to_f32"] = f"{int(x):08x}"
        if not np.isnan(np.uint32(int(b) << 16).view(np.float32)):
            e["bf16_to_f32"] = f"{int(y):08x}"
        widen.append(e)

    out = {
        "version": FIXTURE_VERSION,
        "generator": "gen_float_conversions.py",
        "torch": torch.__version__,
        "numpy": np.__version__,
        "narrow": narrow,
        "widen": widen,
    }
    # One record per line keeps diffs of a regenerated fixture readable.
    lines = []
    for k, v in out.items():
        if isinstance(v, list):
            body = ",\n".join("  " + json.dumps(e) for e in v)
            lines.append(f"{json.dumps(k)}: [\n{body}\n]")
        else:
            lines.append(f"{json.dumps(k)}: {json.dumps(v)}")
    with open("float_conversions.json", "w") as f:
        f.write("{\n" + ",\n".join(lines) + "\n}\n")


if __name__ == "__main__":
    main()
