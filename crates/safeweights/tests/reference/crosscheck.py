"""Cross-checks safeweights against the reference `safetensors` Python package.

`write SEED DIR`: writes randomized tensor sets with the reference's
`serialize_file` (`case_N.ref.safetensors`) and describes each set for the
Rust side (`case_N.json` + `case_N.data`).

`read DIR`: reads every `case_N.ours.safetensors` (written by safeweights)
with the reference's `deserialize` and `safe_open`, and checks each tensor
against `case_N.json`/`case_N.data`.

Only the reference package is imported; no file content is ever executed.
"""

import ctypes
import json
import os
import random
import sys

import safetensors

# safetensors code -> (reference TensorSpec dtype name or None, bits)
DTYPES = {
    "BOOL": ("bool", 8),
    "F4": ("float4_e2m1fn_x2", 4),
    "F6_E2M3": (None, 6),
    "F6_E3M2": (None, 6),
    "U8": ("uint8", 8),
    "I8": ("int8", 8),
    "F8_E5M2": ("float8_e5m2", 8),
    "F8_E4M3": ("float8_e4m3fn", 8),
    "F8_E8M0": ("float8_e8m0fnu", 8),
    "F8_E4M3FNUZ": ("float8_e4m3fnuz", 8),
    "F8_E5M2FNUZ": ("float8_e5m2fnuz", 8),
    "I16": ("int16", 16),
    "U16": ("uint16", 16),
    "F16": ("float16", 16),
    "BF16": ("bfloat16", 16),
    "I32": ("int32", 32),
    "U32": ("uint32", 32),
    "F32": ("float32", 32),
    "C64": ("complex64", 64),
    "F64": ("float64", 64),
    "I64": ("int64", 64),
    "U64": ("uint64", 64),
}

NAME_PARTS = ["model", "layers", "0", "1", "weight", "bias", "attn", "q_proj", "ü", "名前", "a.b", "x\"y", "back\\slash", "tab\tx"]


def random_shape(rng, dtype):
    bits = DTYPES[dtype][1]
    while True:
        rank = rng.choice([0, 1, 1, 2, 2, 3, 4])
        shape = [rng.choice([0, 1, 2, 3, 4, 5, 8, 16]) for _ in range(rank)]
        n = 1
        for d in shape:
            n *= d
        if (n * bits) % 8:
            continue
        if dtype == "F4" and (rank == 0 or shape[-1] % 2):
            continue
        return shape, n * bits // 8


def random_case(rng, index, writable_only):
    codes = [c for c, (ref, _) in DTYPES.items() if ref is not None or not writable_only]
    tensors = []
    names = set()
    for _ in range(rng.randint(0, 12)):
        name = ".".join(rng.choice(NAME_PARTS) for _ in range(rng.randint(1, 4)))
        if name in names:
            continue
        names.add(name)
        dtype = rng.choice(codes)
        shape, nbytes = random_shape(rng, dtype)
        data = bytes(rng.getrandbits(8) for _ in range(nbytes))
        tensors.append((name, dtype, shape, data))
    kind = rng.choice(["none", "empty", "one", "many"])
    metadata = {
        "none": None,
        "empty": {},
        "one": {"format": "pt"},
        "many": {"format": "pt", "zeta": "z", "alpha": "ä\"\\", "mid": "{}"},
    }[kind]
    return tensors, metadata


def describe(path_stem, tensors, metadata):
    blob = bytearray()
    entries = []
    for name, dtype, shape, data in tensors:
        entries.append({"name": name, "dtype": dtype, "shape": shape, "start": len(blob), "end": len(blob) + len(data)})
        blob += data
    with open(path_stem + ".json", "w", encoding="utf-8") as f:
        json.dump({"metadata": metadata, "tensors": entries}, f)
    with open(path_stem + ".data", "wb") as f:
        f.write(blob)


def write(seed, out):
    rng = random.Random(seed)
    os.makedirs(out, exist_ok=True)
    for i in range(60):
        writable = i < 50
        tensors, metadata = random_case(rng, i, writable_only=writable)
        stem = os.path.join(out, f"case_{i}")
        describe(stem, tensors, metadata)
        if not writable:
            continue  # F6 cannot be written through the reference's Python API
        keep = []
        specs = {}
        for name, dtype, shape, data in tensors:
            buf = ctypes.create_string_buffer(data, len(data)) if data else ctypes.create_string_buffer(1)
            keep.append(buf)
            ref_shape = list(shape)
            if dtype == "F4":
                ref_shape[-1] //= 2  # the reference takes torch's packed storage shape
            specs[name] = safetensors.TensorSpec(dtype=DTYPES[dtype][0], shape=ref_shape, data_ptr=ctypes.addressof(buf), data_len=len(data))
        safetensors.serialize_file(specs, stem + ".ref.safetensors", metadata=metadata)


def read(out):
    checked = 0
    for fname in sorted(os.listdir(out)):
        if not fname.endswith(".ours.safetensors"):
            continue
        stem = os.path.join(out, fname[: -len(".ours.safetensors")])
        with open(stem + ".json", encoding="utf-8") as f:
            spec = json.load(f)
        with open(stem + ".data", "rb") as f:
            blob = f.read()
        with open(os.path.join(out, fname), "rb") as f:
            ours = f.read()
        got = dict(safetensors.deserialize(ours))
        assert set(got) == {t["name"] for t in spec["tensors"]}, fname
        for t in spec["tensors"]:
            g = got[t["name"]]
            assert g["dtype"] == t["dtype"] or DTYPES[t["dtype"]][0] == g["dtype"], (fname, t["name"], g["dtype"], t["dtype"])
            shape = list(t["shape"])
            if t["dtype"] == "F4" and list(g["shape"]) != shape:
                shape[-1] //= 2
            assert list(g["shape"]) == shape, (fname, t["name"], g["shape"], t["shape"])
            assert bytes(g["data"]) == blob[t["start"]:t["end"]], (fname, t["name"])
        # safe_open reads the same file lazily: metadata and key order.
        with safetensors.safe_open(os.path.join(out, fname), framework="np") as f:
            assert f.metadata() == spec["metadata"] or (spec["metadata"] == {} and f.metadata() in ({}, None)), (fname, f.metadata())
            assert list(f.keys()) == sorted(t["name"] for t in spec["tensors"]), fname
        checked += 1
    print(f"reference read {checked} safeweights files: all tensors equal")


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(int(sys.argv[2]), sys.argv[3])
    elif sys.argv[1] == "read":
        read(sys.argv[2])
    else:
        raise SystemExit("usage: crosscheck.py write SEED DIR | read DIR")
