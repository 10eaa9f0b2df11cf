"""CPU load/save benchmark: safeweights against the reference safetensors, same run.

    python bench/python_cpu.py [--big-gb 2] [--big-tensors 200] [--small 10000] [--repeat 3] [--dir /tmp]

Two checkpoints: a large one (default ~2 GB of F32/BF16 tensors) and one of
10,000 small tensors. For each, `load_file` (touching every byte, so that
lazy memory maps are really read), `save_file`, and safeweights'
`load_checkpoint` (the parallel loader, into owned tensors) against the
reference `load_file` + `clone()` (owned tensors too), best of --repeat, page
cache warm. Prints times, GB/s and the safetensors/safeweights ratio (>1:
safeweights faster), and the machine.
"""

import argparse
import os
import platform
import tempfile
import time

import torch

import safetensors.torch as ref
import safeweights.torch as sw


def machine():
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ram = "?"
    try:
        with open("/proc/meminfo") as f:
            ram = f"{int(f.readline().split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {ram} RAM, {platform.system()} {platform.release()}, torch {torch.__version__}"


def big_checkpoint(gb, count):
    total = int(gb * 1e9)
    per = total // count
    tensors = {}
    for i in range(count):
        dtype = torch.float32 if i % 2 == 0 else torch.bfloat16
        elems = per // (4 if dtype == torch.float32 else 2)
        cols = 1024
        tensors[f"model.layers.{i}.weight"] = torch.randn(elems // cols, cols).to(dtype)
    return tensors


def small_checkpoint(count):
    return {f"block.{i}.param": torch.randn(16, 8) for i in range(count)}


def touch(tensors):
    # Read every page: sum of a uint8 view is cheap and forces the bytes in.
    s = 0
    for t in tensors.values():
        if t.numel():
            s += int(t.view(torch.uint8).view(-1)[:: 4096].sum()) if t.is_contiguous() else 0
    return s


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def run_case(name, tensors, directory, repeat):
    nbytes = sum(t.numel() * t.element_size() for t in tensors.values())
    path_ref = os.path.join(directory, f"bench_ref_{name}.safetensors")
    path_sw = os.path.join(directory, f"bench_sw_{name}.safetensors")
    rows = []
    try:
        save_ref = best(lambda: ref.save_file(tensors, path_ref), repeat)
        save_sw = best(lambda: sw.save_file(tensors, path_sw), repeat)
        with open(path_ref, "rb") as a, open(path_sw, "rb") as b:
            identical = a.read() == b.read()
        rows.append(("save_file", save_ref, save_sw))
        load_ref = best(lambda: touch(ref.load_file(path_sw)), repeat)
        load_sw = best(lambda: touch(sw.load_file(path_sw)), repeat)
        rows.append(("load_file", load_ref, load_sw))
        # The parallel loader copies every byte into owned tensors; load_file
        # maps lazily, so its peer here is load_file + clone (owned tensors).
        owned_ref = best(lambda: touch({k: v.clone() for k, v in ref.load_file(path_sw).items()}), repeat)
        ckpt_sw = best(lambda: touch(sw.load_checkpoint(path_sw)), repeat)
        rows.append(("load_checkpoint", owned_ref, ckpt_sw))
    finally:
        for p in (path_ref, path_sw):
            if os.path.exists(p):
                os.remove(p)
    print(f"\n{name}: {len(tensors)} tensors, {nbytes / 1e9:.3f} GB, files byte-identical: {identical}")
    print(f"  {'op':<15} {'safetensors':>14} {'safeweights':>14} {'ratio':>7}")
    for op, r, s in rows:
        print(f"  {op:<15} {r:8.3f} s {nbytes / r / 1e9:5.2f} GB/s  {s:6.3f} s {nbytes / s / 1e9:5.2f} GB/s  {r / s:5.2f}x")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--big-gb", type=float, default=2.0)
    p.add_argument("--big-tensors", type=int, default=200)
    p.add_argument("--small", type=int, default=10000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--dir", default=tempfile.gettempdir())
    args = p.parse_args()
    print("machine:", machine())
    print("note: save_file of both libraries writes a temp file and renames; safeweights also fsyncs.")
    run_case("big", big_checkpoint(args.big_gb, args.big_tensors), args.dir, args.repeat)
    run_case("small", small_checkpoint(args.small), args.dir, args.repeat)


if __name__ == "__main__":
    main()
