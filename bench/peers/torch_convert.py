"""The PyTorch + reference safetensors side of bench/convert.py: what
`safetensors`' own convert script does for one checkpoint.

    python torch_convert.py SRC.bin DST.safetensors [--mmap]

torch.load(weights_only=True) (optionally mmap=True), drop shared names with
safetensors.torch._remove_duplicate_names (recorded in metadata as
save_model does), make tensors contiguous, save_file, fsync. Prints one JSON
line: {"seconds": ..., "tensors": ...}.
"""
import json
import os
import sys
import time

import torch
from safetensors.torch import _remove_duplicate_names, save_file


def main():
    src, dst = sys.argv[1], sys.argv[2]
    mmap = "--mmap" in sys.argv[3:]
    t = time.perf_counter()
    loaded = torch.load(src, map_location="cpu", weights_only=True, mmap=mmap)
    if "state_dict" in loaded:
        loaded = loaded["state_dict"]
    metadata = {"format": "pt"}
    for kept, dropped in _remove_duplicate_names(loaded).items():
        for name in dropped:
            metadata.setdefault(name, kept)
            del loaded[name]
    loaded = {k: v.contiguous() for k, v in loaded.items()}
    save_file(loaded, dst, metadata=metadata)
    fd = os.open(dst, os.O_RDONLY)
    os.fsync(fd)  # safeweights fsyncs before reporting; measure the same durability
    os.close(fd)
    print(json.dumps({"seconds": time.perf_counter() - t, "tensors": len(loaded)}))


if __name__ == "__main__":
    main()
