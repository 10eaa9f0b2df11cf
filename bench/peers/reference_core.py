"""The reference safetensors 0.8 side of bench/src/bin/core.rs.

Prints one JSON line: {"seconds": median or single time}.
"""
import json
import os
import statistics
import sys
import time

import numpy as np
import safetensors
from safetensors.numpy import load_file, save_file


def main():
    mode = sys.argv[1]
    if mode == "open":
        path = sys.argv[2]
        times = []
        for _ in range(21):
            t = time.perf_counter()
            with safetensors.safe_open(path, framework="numpy") as f:
                assert len(f.keys()) == 10_000
            times.append(time.perf_counter() - t)
        print(json.dumps({"seconds": statistics.median(times)}))
    elif mode == "write":
        path, count, chunk = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        payload = (np.arange(chunk, dtype=np.int64) % 251).astype(np.uint8).view(np.float32)
        tensors = {f"w.{i:04}": payload for i in range(count)}
        t = time.perf_counter()
        save_file(tensors, path)
        fd = os.open(path, os.O_RDONLY)
        os.fsync(fd)  # safeweights fsyncs before reporting; measure the same durability
        os.close(fd)
        print(json.dumps({"seconds": time.perf_counter() - t}))
    elif mode == "read":
        path = sys.argv[2]
        times = []
        for _ in range(3):
            t = time.perf_counter()
            tensors = load_file(path)
            assert sum(a.nbytes for a in tensors.values()) > 0
            del tensors
            times.append(time.perf_counter() - t)
        print(json.dumps({"seconds": statistics.median(times)}))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
