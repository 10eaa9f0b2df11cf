"""GPU load benchmark: safeweights vs the reference and other fast loaders.

UNTESTED: written without a GPU, from the libraries' documented APIs
(safetensors `safe_open(..., device=...)`; fastsafetensors
`SafeTensorsFileLoader(SingleGroup(), device, nogds=True)` +
`add_filenames({0: files})` + `copy_files_to_device()`; InstantTensor
`instanttensor.safe_open(files, framework="pt", device=N)` + `f.tensors()`;
Run:ai `runai_model_streamer.SafetensorsStreamer().stream_file(path)` +
`get_tensors()`). A peer that is not installed, or fails, is reported and
skipped; the others still run.

Usage:
  python bench/gpu/load_gpu.py DIR_OR_FILES... [--device cuda:0] [--runs 3] [--cold]

Each loader must leave every tensor in device memory (a dict name -> CUDA
tensor); timings include `torch.cuda.synchronize()`. With --cold the files'
pages are evicted (drop_caches if permitted, else posix_fadvise DONTNEED)
before each run; files on tmpfs cannot be evicted (they *are* the cache).
Prints one JSON line per loader, then a summary table.
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import time

import torch


def files_of(paths):
    out = []
    for p in paths:
        if os.path.isdir(p):
            out += sorted(glob.glob(os.path.join(p, "*.safetensors")))
        else:
            out.append(p)
    return out


def evict(files):
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3")
    except OSError:
        pass
    for p in files:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


# --- loaders: each returns {name: cuda tensor} ------------------------------


def load_reference(files, device):
    from safetensors import safe_open

    out = {}
    for p in files:
        with safe_open(p, framework="pt", device=device) as f:
            for k in f.keys():
                out[k] = f.get_tensor(k)
    return out


def load_safeweights(files, device):
    # The proposed Python hook (python/ package): safeweights.load(paths,
    # device=...) -> dict of torch tensors, backed by safeweights-load.
    import safeweights

    fn = getattr(safeweights, "load", None)
    if fn is None:
        raise ImportError("safeweights.load is not wired yet (python/ package)")
    return fn(files, device=device)


def load_fastsafetensors(files, device):
    from fastsafetensors import SafeTensorsFileLoader, SingleGroup

    loader = SafeTensorsFileLoader(SingleGroup(), torch.device(device), nogds=True)
    try:
        loader.add_filenames({0: files})
        fb = loader.copy_files_to_device()
        # get_tensor returns views into fastsafetensors' buffers: clone so the
        # result outlives close(), as the others' results do.
        out = {k: fb.get_tensor(k).clone() for k in fb.key_to_rank_lidx.keys()}
        fb.close()
    finally:
        loader.close()
    return out


def load_instanttensor(files, device):
    from instanttensor import safe_open

    index = torch.device(device).index or 0
    out = {}
    with safe_open(files, framework="pt", device=index) as f:
        for name, tensor in f.tensors():
            out[name] = tensor.clone()  # documented: the buffer is reused
    return out


def load_runai(files, device):
    from runai_model_streamer import SafetensorsStreamer

    out = {}
    with SafetensorsStreamer() as streamer:
        for p in files:
            streamer.stream_file(p)
            for name, tensor in streamer.get_tensors():
                out[name] = tensor.to(device, non_blocking=True)
    return out


LOADERS = {
    "safeweights": load_safeweights,
    "reference safe_open(device=cuda)": load_reference,
    "fastsafetensors": load_fastsafetensors,
    "instanttensor": load_instanttensor,
    "runai-model-streamer": load_runai,
}


def rust_engine(paths, device, cold):
    """The Rust engine alone (no torch tensors), through the crate's example."""
    exe = os.environ.get("SAFEWEIGHTS_LOAD_EXAMPLE")
    if not exe:
        return None
    args = [exe, paths[0], "--device", device] + (["--cold"] if cold else [])
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": out.stderr.strip()}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--device", default="cuda:0")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cold", action="store_true")
    ap.add_argument("--only", nargs="*", default=None)
    a = ap.parse_args()
    files = files_of(a.paths)
    total = sum(os.path.getsize(p) for p in files)
    torch.cuda.init()
    print(f"# {len(files)} files, {total / 1e9:.2f} GB, {torch.cuda.get_device_name(a.device)}, "
          f"{'cold' if a.cold else 'warm'}", file=sys.stderr)
    results = {}
    for name, fn in LOADERS.items():
        if a.only and name not in a.only:
            continue
        times, nbytes, err = [], 0, None
        for _ in range(a.runs):
            if a.cold:
                evict(files)
            torch.cuda.synchronize()
            t = time.perf_counter()
            try:
                tensors = fn(files, a.device)
            except Exception as e:  # missing peer, or a failure: skip it
                err = f"{type(e).__name__}: {e}"
                break
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
            nbytes = sum(v.numel() * v.element_size() for v in tensors.values())
            assert all(v.is_cuda for v in tensors.values()), name
            del tensors
            torch.cuda.empty_cache()
        row = {"loader": name, "cold": a.cold}
        if err:
            row["skipped"] = err
        else:
            s = statistics.median(times)
            row.update(seconds=s, bytes=nbytes, gb_per_s=nbytes / s / 1e9)
        results[name] = row
        print(json.dumps(row))
    rust = rust_engine(a.paths, a.device, a.cold)
    if rust is not None:
        print(json.dumps({"loader": "safeweights-load (Rust example)", **rust}))
    ref = results.get("reference safe_open(device=cuda)", {}).get("seconds")
    for name, r in results.items():
        if "seconds" in r:
            ratio = f"{ref / r['seconds']:.2f}x vs reference" if ref else ""
            print(f"{name:<34} {r['gb_per_s']:7.2f} GB/s  {ratio}", file=sys.stderr)
        else:
            print(f"{name:<34} skipped ({r['skipped'][:80]})", file=sys.stderr)


if __name__ == "__main__":
    main()
