"""Benchmark: `safetensors.torch.load(bytes)` (the path transformers takes with
`disable_mmap=True`), safeweights against the reference, in the same run.

    python bench/torch_load_bytes.py [--gb 1.5] [--dir /tmp/sw-load-bytes] [--repeat 3]

One file is written with the reference; each side then runs as a fresh child
process that reads the file into a `bytes` object and times `load(data)`
alone (the first call and the best of --repeat), and reports its peak RSS (the bytes included).
The loaded tensors are checked equal to the reference's.
"""
import argparse
import os
import platform
import subprocess
import sys

CHILD = """
import resource, sys, time, torch
mod = sys.argv[1]
if mod == "safeweights":
    import safeweights.torch as st
else:
    import safetensors.torch as st
data = open(sys.argv[2], "rb").read()
best = first = None
for _ in range(int(sys.argv[3])):
    t = time.perf_counter()
    tensors = st.load(data)
    dt = time.perf_counter() - t
    first = dt if first is None else first
    best = dt if best is None else min(best, dt)
    checksum = sum(int(v.view(torch.uint8).sum()) for v in tensors.values())
    del tensors
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(first, best, peak, checksum)
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=1.5)
    ap.add_argument("--dir", default="/tmp/sw-load-bytes")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import torch
    from safetensors.torch import save_file

    os.makedirs(args.dir, exist_ok=True)
    path = os.path.join(args.dir, "model.safetensors")
    n = int(args.gb * 1e9 / 2 / 64)  # 64 bf16 / f32 matrices
    torch.manual_seed(0)
    tensors = {}
    for i in range(64):
        dtype = torch.bfloat16 if i % 2 else torch.float32
        per = n * 2 // dtype.itemsize
        tensors[f"layers.{i}.weight"] = torch.randn(per).to(dtype)
    save_file(tensors, path)
    del tensors
    size = os.path.getsize(path)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__}; file {size / 1e9:.2f} GB")
    rows = {}
    for mod in ("safetensors", "safeweights"):
        out = subprocess.run([sys.executable, "-c", CHILD, mod, path, str(args.repeat)], capture_output=True, text=True, check=True)
        first, best, peak, checksum = out.stdout.split()
        rows[mod] = (float(best), int(peak), checksum, float(first))
        print(
            f"{mod:>12}: load(bytes) first {float(first):.3f} s, best {float(best):.3f} s"
            f" = {size / float(best) / 1e9:.2f} GB/s, peak RSS {int(peak) / 2**30:.2f} GiB"
        )
    assert rows["safetensors"][2] == rows["safeweights"][2], "loaded tensors differ"
    ref, ours = rows["safetensors"], rows["safeweights"]
    print(
        f"ratio (reference time / ours): first call {ref[3] / ours[3]:.2f}x, best {ref[0] / ours[0]:.2f}x;"
        f" peak memory ours/reference: {ours[1] / ref[1]:.2f}"
    )
    os.remove(path)


if __name__ == "__main__":
    main()
