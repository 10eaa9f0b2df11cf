"""Benchmark: converting compressed NumPy archives (`np.savez_compressed`) to
safetensors, safeweights against numpy + the reference (`np.load` then
`safetensors.numpy.save_file`), in the same run, at several sizes, to show
that the time grows linearly with the size (each member inflated once).

    python bench/npz.py [--sizes 4,64,1024] [--dir /tmp/sw-npz-bench] [--bin PATH]

Sizes are MB of float32 data (random, so the archives do not shrink to
nothing), split over 4 arrays. `--bin` is the release `safeweights` binary
(default: built here with cargo). Each side runs as a child process under
/usr/bin/time (wall s, peak RSS); safeweights' time includes reading every
tensor back and comparing it with the source. The two outputs are checked to
hold identical tensors.
"""
import argparse
import os
import platform
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

PEER = """
import sys, numpy as np
from safetensors.numpy import save_file
with np.load(sys.argv[1]) as z:
    save_file({k: z[k] for k in z.files}, sys.argv[2])
"""


def run(cmd, tmp):
    stats = os.path.join(tmp, "time.txt")
    p = subprocess.run(["/usr/bin/time", "-o", stats, "-f", "%e %M"] + cmd, capture_output=True)
    if p.returncode != 0:
        sys.exit(f"{cmd} failed: {p.stderr.decode()}")
    wall, kb = open(stats).read().split()[-2:]
    return float(wall), int(kb) * 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="4,64,1024")
    ap.add_argument("--dir", default="/tmp/sw-npz-bench")
    ap.add_argument("--bin")
    args = ap.parse_args()
    import numpy as np
    from safetensors.numpy import load_file

    binary = args.bin
    if not binary:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "safeweights-cli"], cwd=ROOT, check=True)
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
        binary = os.path.join(target, "release", "safeweights")
    os.makedirs(args.dir, exist_ok=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}; numpy {np.__version__}")
    print(f"{'MB':>6} {'npz MB':>7} {'safeweights s':>14} {'peak MiB':>9} {'numpy+ref s':>12} {'peak MiB':>9} {'ratio':>6} {'s/GB ours':>9}")
    rng = np.random.default_rng(0)
    for mb in (int(s) for s in args.sizes.split(",")):
        tmp = os.path.join(args.dir, f"{mb}")
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        src = os.path.join(tmp, "in.npz")
        n = mb * 1_000_000 // 4 // 4
        # Random mantissas over a few exponents: compresses a little, like weights.
        arrays = {f"w{i}": (rng.standard_normal(n, dtype=np.float32) * 0.02).astype(np.float32) for i in range(4)}
        np.savez_compressed(src, **arrays)
        del arrays
        ours_out, peer_out = os.path.join(tmp, "ours.safetensors"), os.path.join(tmp, "peer.safetensors")
        ours = run([binary, "convert", src, ours_out], tmp)
        peer = run([sys.executable, "-c", PEER, src, peer_out], tmp)
        a, b = load_file(ours_out), load_file(peer_out)
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), "outputs differ"
        size = os.path.getsize(src) / 1e6
        print(
            f"{mb:>6} {size:>7.1f} {ours[0]:>14.2f} {ours[1] / 2**20:>9.0f} {peer[0]:>12.2f} {peer[1] / 2**20:>9.0f}"
            f" {peer[0] / max(ours[0], 1e-9):>6.2f} {ours[0] / (mb / 1000):>9.2f}"
        )
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
