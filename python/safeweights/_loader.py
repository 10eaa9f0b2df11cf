"""Torch tensors from the parallel loader (``safeweights_load``): tensors are
allocated up front with ``torch.empty`` and the engine reads the files
straight into them with the GIL released, on the CPU or, when the loader
can reach CUDA, straight onto the GPU. Used by ``safeweights.torch`` and by
``safe_open(..., framework="pt", device="cuda:N")``."""

import os

import torch

from . import _frameworks
from ._device import _parse_device
from ._safeweights import _cuda_status, _Plan

_CUDA = None


def cuda_available():
    """Whether the loader can copy straight to CUDA devices (and torch sees them)."""
    global _CUDA
    if _CUDA is None:
        ok, _detail = _cuda_status()
        _CUDA = bool(ok) and torch.cuda.is_available()
    return _CUDA


def engine_cuda_index(device):
    """The CUDA ordinal the engine loads onto for a normalised device string,
    or None when tensors are loaded on the CPU (and moved after if needed)."""
    kind, _, index = device.partition(":")
    if kind != "cuda" or not cuda_available():
        return None
    return int(index) if index else torch.cuda.current_device()


def paths(path_or_dir_or_files):
    """One path (file, index or folder) or an iterable of ``.safetensors`` files."""
    if isinstance(path_or_dir_or_files, (str, bytes, os.PathLike)):
        return [os.fsdecode(path_or_dir_or_files)]
    return [os.fsdecode(p) for p in path_or_dir_or_files]


def load_plan(plan, device="cpu", threads=None, memory_budget=None):
    """Loads every tensor of a ``_Plan``: ``{name: tensor}`` in plan order."""
    device = _parse_device(device)
    entries = plan.entries()
    index = engine_cuda_index(device)
    if index is not None:
        target = f"cuda:{index}"
        bufs = [torch.empty(n, dtype=torch.uint8, device=target) for _, _, _, n in entries]
        # The caching allocator may hand out blocks that kernels queued on
        # torch's stream still use: let them finish before the loader writes.
        torch.cuda.current_stream(index).synchronize()
        plan.load_cuda(index, [b.data_ptr() for b in bufs], threads, memory_budget)
    else:
        bufs = [torch.empty(n, dtype=torch.uint8) for _, _, _, n in entries]
        plan.load_cpu([b.data_ptr() for b in bufs], threads, memory_budget)
    result = {}
    for (name, code, shape, _), buf in zip(entries, bufs):
        t = _frameworks._torch_from_u8(buf, code, shape)
        if index is None and device != "cpu":
            t = t.to(device)
        result[name] = t
    return result


def iter_plan(plan, device="cpu", threads=None, memory_budget=None):
    """Yields ``(name, tensor)`` of a ``_Plan`` as each finishes loading.

    The tensors are allocated up front and filled in place by a background
    load (no copy); each is yielded once complete, and the loader keeps the
    others alive until it is done, even if the iteration stops early."""
    device = _parse_device(device)
    entries = plan.entries()
    bufs = [torch.empty(n, dtype=torch.uint8) for _, _, _, n in entries]
    completions = plan.stream_into([b.data_ptr() for b in bufs], bufs, threads, memory_budget)
    for i in completions:
        name, code, shape, _ = entries[i]
        t = _frameworks._torch_from_u8(bufs[i], code, shape)
        bufs[i] = None
        if device != "cpu":
            t = t.to(device)
        yield name, t


def open_plan(path_or_dir_or_files):
    return _Plan.open(paths(path_or_dir_or_files))
