"""Benchmark: converting a >= 2 GB PyTorch checkpoint to safetensors,
safeweights-convert against torch.load + safetensors.torch.save_file, in the
same run, on the same (page-cached) input.

    python bench/convert.py [--gb 2.2] [--dir /tmp/sw-convert-bench] [--bin PATH]

`--bin` is the release build of crates/safeweights-convert/examples/convert.rs
(default: built here with cargo, honouring CARGO_TARGET_DIR). Each side runs
once as a child process; wall time and peak RSS of that child are measured
by /usr/bin/time (%e, %M). safeweights' time includes reading every tensor back and
comparing it bit for bit with the source, and both sides fsync the output.
Also checks the two outputs hold identical tensors.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run(cmd, tmp):
    """Runs cmd under /usr/bin/time (a small C parent, so the child's peak RSS
    is its own and not inherited from this Python process): wall s, peak RSS bytes, stdout."""
    stats = os.path.join(tmp, "time.txt")
    p = subprocess.run(["/usr/bin/time", "-o", stats, "-f", "%e %M"] + cmd,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        sys.exit(f"{cmd[0]} failed: {p.stderr.decode()}")
    wall, kb = open(stats).read().split()[-2:]
    return float(wall), int(kb) * 1024, p.stdout


def make_checkpoint(path, gb):
    import torch
    # a transformer-like state dict: fp32 and bf16 matrices, a tied embedding,
    # one stored transposed view
    n = 0
    sd = {}
    emb = torch.empty(32000, 4096, dtype=torch.bfloat16).normal_()
    sd["model.embed_tokens.weight"] = emb
    sd["lm_head.weight"] = emb  # tied
    n += emb.numel() * 2
    i = 0
    while n < gb * 1e9:
        w = torch.empty(4096, 4096).normal_()
        sd[f"model.layers.{i}.mlp.weight"] = w if i % 4 else w.t()
        sd[f"model.layers.{i}.norm.weight"] = torch.ones(4096)
        n += w.numel() * 4 + 4096 * 4
        i += 1
    torch.save(sd, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=2.2)
    ap.add_argument("--dir", default="/tmp/sw-convert-bench")
    ap.add_argument("--bin")
    ap.add_argument("--make", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.make:
        make_checkpoint(a.make, a.gb)
        return
    os.makedirs(a.dir, exist_ok=True)
    src = os.path.join(a.dir, "pytorch_model.bin")
    if not os.path.exists(src):
        # in a child process, so this one stays small
        py = os.environ.get("SAFEWEIGHTS_PYTHON") or sys.executable
        subprocess.run([py, __file__, "--make", src, "--gb", str(a.gb)], check=True)
    size = os.path.getsize(src)
    binary = a.bin
    if binary is None:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "safeweights-convert",
                        "--example", "convert"], cwd=ROOT, check=True)
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
        binary = os.path.join(target, "release", "examples", "convert")
    # warm the page cache so both sides read the same cached input
    with open(src, "rb") as f:
        while f.read(64 << 20):
            pass
    rows = []
    ours = os.path.join(a.dir, "ours.safetensors")
    wall, rss, out = run([binary, src, ours, "--overwrite"], a.dir)
    summary = json.loads(out)
    rows.append(("safeweights-convert (incl. read-back verification)", wall, rss))
    py = os.environ.get("SAFEWEIGHTS_PYTHON") or os.path.join(ROOT, ".venv", "bin", "python")
    peer = os.path.join(a.dir, "torch.safetensors")
    script = os.path.join(HERE, "peers", "torch_convert.py")
    wall, rss, _ = run([py, script, src, peer], a.dir)
    rows.append(("torch.load + safetensors save_file", wall, rss))
    peer2 = os.path.join(a.dir, "torch_mmap.safetensors")
    wall, rss, _ = run([py, script, src, peer2, "--mmap"], a.dir)
    rows.append(("torch.load(mmap=True) + save_file", wall, rss))
    # same tensors on both sides
    check = (
        "import sys;from safetensors.torch import load_file;"
        "a=load_file(sys.argv[1]);b=load_file(sys.argv[2]);"
        "assert a.keys()==b.keys(),(a.keys()^b.keys());"
        "assert all(a[k].dtype==b[k].dtype and a[k].view(-1).view(__import__('torch').uint8).equal(b[k].view(-1).view(__import__('torch').uint8)) for k in a)"
    )
    subprocess.run([py, "-c", check, ours, peer], check=True)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} GiB RAM")
    print(f"input: {src}, {size / 1e9:.2f} GB, {summary['tensors']} tensors written, "
          f"{len(summary['dropped_aliases'])} tied alias dropped; outputs identical")
    print(f"{'':55} {'seconds':>8} {'GB/s':>6} {'peak RSS':>10}")
    for name, wall, rss in rows:
        print(f"{name:55} {wall:8.2f} {size / wall / 1e9:6.2f} {rss / 2**20:8.0f} MiB")
    print(json.dumps({"input_bytes": size, "rows": [
        {"name": n, "seconds": w, "peak_rss_bytes": r} for n, w, r in rows]}))


if __name__ == "__main__":
    main()
