"""The reference safetensors 0.8 side of bench/src/bin/load.rs.

Usage: reference_load.py warm|cold RUNS FILE...
Loads every file with `safetensors.torch.load_file` (numpy has no bf16),
`RUNS` times. That maps the file and returns lazy views, so each tensor is
then materialised with `.clone()` (every byte read into fresh memory, which
is what safeweights-load delivers); for `cold`, evicts the files' pages first
(posix_fadvise DONTNEED, as the Rust side does when drop_caches is not
permitted). Prints one JSON line: {"seconds": median}.
"""
import json
import os
import statistics
import sys
import time

import torch
from safetensors.torch import load_file


def evict(paths):
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3")
    except OSError:
        pass
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def warm(paths):
    for p in paths:
        with open(p, "rb") as f:
            while f.read(64 << 20):
                pass


def main():
    mode, runs, paths = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    times = []
    for _ in range(runs):
        if mode == "cold":
            evict(paths)
        else:
            warm(paths)
        t = time.perf_counter()
        loaded = [{k: v.clone() for k, v in load_file(p).items()} for p in paths]
        n = sum(a.nbytes for d in loaded for a in d.values())
        times.append(time.perf_counter() - t)
        assert n > 0
        del loaded
    print(json.dumps({"seconds": statistics.median(times), "torch_threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
