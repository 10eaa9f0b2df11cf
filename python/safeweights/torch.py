"""PyTorch helpers: ``save``, ``save_file``, ``load``, ``load_file``,
``save_model``, ``load_model`` and the shared-tensor helpers that libraries
import from ``safetensors.torch``."""

import os
import sys
from collections import defaultdict
from typing import Any, Dict, Iterable, Iterator, List, Optional, Set, Tuple, Union

try:
    import torch
except ImportError as _e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "safeweights.torch needs PyTorch, which could not be imported: pip install torch"
    ) from _e

from . import _frameworks
from ._safeweights import TensorSpec, _File, deserialize, serialize, serialize_file
from ._open import safe_open

__all__ = [
    "save",
    "save_file",
    "load",
    "load_file",
    "save_model",
    "load_model",
    "storage_ptr",
    "storage_size",
    "load_checkpoint",
    "iter_checkpoint",
    "release_pinned_memory",
]


def _dtype(name):
    return getattr(torch, name, None)


_float8_e4m3fn = _dtype("float8_e4m3fn")
_float8_e4m3fnuz = _dtype("float8_e4m3fnuz")
_float8_e5m2 = _dtype("float8_e5m2")
_float8_e5m2fnuz = _dtype("float8_e5m2fnuz")
_float8_e8m0 = _dtype("float8_e8m0fnu")
_float4_e2m1_x2 = _dtype("float4_e2m1fn_x2")

# Bytes per element of every torch dtype that has a format code.
_SIZE = {
    dt: size
    for dt, size in [
        (torch.int64, 8),
        (torch.float32, 4),
        (torch.int32, 4),
        (torch.bfloat16, 2),
        (torch.float16, 2),
        (torch.int16, 2),
        (torch.uint8, 1),
        (torch.int8, 1),
        (torch.bool, 1),
        (torch.float64, 8),
        (torch.complex64, 8),
        (_dtype("uint64"), 8),
        (_dtype("uint32"), 4),
        (_dtype("uint16"), 2),
        (_float8_e4m3fn, 1),
        (_float8_e4m3fnuz, 1),
        (_float8_e5m2, 1),
        (_float8_e5m2fnuz, 1),
        (_float8_e8m0, 1),
        (_float4_e2m1_x2, 1),
    ]
    if dt is not None
}

# Format code -> torch dtype, for the dtypes this torch has.
_TYPES = {
    code: getattr(torch, name)
    for code, name in _frameworks.TORCH_DTYPES.items()
    if getattr(torch, name, None) is not None
}


def _getdtype(dtype_str: str) -> "torch.dtype":
    return _TYPES[dtype_str]


def storage_ptr(tensor: torch.Tensor) -> int:
    """The address of the storage behind ``tensor`` (0 for meta tensors)."""
    try:
        return tensor.untyped_storage().data_ptr()
    except Exception:
        try:
            return tensor.storage().data_ptr()
        except NotImplementedError:
            return 0


def storage_size(tensor: torch.Tensor) -> int:
    """The size in bytes of the storage behind ``tensor``."""
    try:
        return tensor.untyped_storage().nbytes()
    except AttributeError:
        try:
            return tensor.storage().size() * _SIZE[tensor.dtype]
        except NotImplementedError:
            return tensor.nelement() * _SIZE[tensor.dtype]


def _end_ptr(tensor: torch.Tensor) -> int:
    """One past the address of the tensor's last element."""
    if tensor.nelement():
        return tensor.view(-1)[-1].data_ptr() + _SIZE[tensor.dtype]
    return tensor.data_ptr()


def _filter_shared_not_shared(tensors: List[Set[str]], state_dict: Dict[str, torch.Tensor]) -> List[Set[str]]:
    """Splits groups sharing a storage into groups whose byte ranges overlap."""
    result = []
    for group in tensors:
        if len(group) < 2:
            result.append(group)
            continue
        spans = sorted((state_dict[n].data_ptr(), _end_ptr(state_dict[n]), n) for n in group)
        _, reach, first = spans[0]
        result.append({first})
        for begin, end, name in spans[1:]:
            if begin >= reach:
                result.append({name})
            else:
                result[-1].add(name)
            reach = end
    return result


def _find_shared_tensors(state_dict: Dict[str, torch.Tensor]) -> List[Set[str]]:
    """Groups of names whose tensors share memory (singletons for the rest)."""
    by_storage = defaultdict(set)
    meta = torch.device("meta")
    for name, t in state_dict.items():
        if t.device != meta and storage_ptr(t) != 0 and storage_size(t) != 0:
            # The device is part of the key: equal addresses on two GPUs differ.
            by_storage[(t.device, storage_ptr(t), storage_size(t))].add(name)
    groups = list(sorted(by_storage.values()))
    return _filter_shared_not_shared(groups, state_dict)


def _is_complete(tensor: torch.Tensor) -> bool:
    """Whether the tensor covers its whole storage."""
    return tensor.data_ptr() == storage_ptr(tensor) and tensor.nelement() * _SIZE[tensor.dtype] == storage_size(
        tensor
    )


def _remove_duplicate_names(
    state_dict: Dict[str, torch.Tensor],
    *,
    preferred_names: Optional[List[str]] = None,
    discard_names: Optional[List[str]] = None,
) -> Dict[str, List[str]]:
    """For each group of shared tensors, the name to keep and the names to drop.

    The kept name covers the whole storage; among candidates ``preferred_names``
    win, then names not in ``discard_names``, then the first in sorted order.
    """
    preferred = set(preferred_names or [])
    discard = set(discard_names or [])
    to_remove = defaultdict(list)
    for shared in _find_shared_tensors(state_dict):
        complete = {n for n in shared if _is_complete(state_dict[n])}
        if not complete:
            raise RuntimeError(
                "Error while trying to find names to remove to save state dict, but found no suitable name to keep"
                f" for saving amongst: {shared}. None is covering the entire storage.Refusing to save/load the model"
                " since you could be storing much more memory than needed. Please refer to"
                " https://huggingface.co/docs/safetensors/torch_shared_tensors for more information. Or open an"
                " issue."
            )
        keep = min(complete)
        kept_not_discarded = complete - discard
        if kept_not_discarded:
            keep = min(kept_not_discarded)
        if preferred:
            chosen = preferred & complete
            if chosen:
                keep = min(chosen)
        for name in sorted(shared):
            if name != keep:
                to_remove[keep].append(name)
    return to_remove


def save_model(
    model: torch.nn.Module,
    filename: str,
    metadata: Optional[Dict[str, str]] = None,
    force_contiguous: bool = True,
):
    """Saves a model's state dict to ``filename``, handling shared (tied) tensors.

    Of each group of tensors sharing memory, one complete name is saved; the
    dropped aliases are recorded in the metadata as ``{alias: kept_name}``
    (user metadata is never overwritten), and :func:`load_model` restores them.

    Args:
        model (`torch.nn.Module`): the model to save.
        filename (`str`): the file to write.
        metadata (`Dict[str, str]`, *optional*): extra text metadata.
        force_contiguous (`bool`, defaults to `True`): make tensors contiguous
            before saving.
    """
    state_dict = model.state_dict()
    for kept, aliases in _remove_duplicate_names(state_dict).items():
        for alias in aliases:
            if metadata is None:
                metadata = {}
            if alias not in metadata:
                metadata[alias] = kept
            del state_dict[alias]
    if force_contiguous:
        state_dict = {k: v.contiguous() for k, v in state_dict.items()}
    try:
        save_file(state_dict, filename, metadata=metadata)
    except ValueError as e:
        raise ValueError(
            str(e) + " Or use save_model(..., force_contiguous=True), read the docs for potential caveats."
        )


def load_model(
    model: torch.nn.Module,
    filename: Union[str, os.PathLike],
    strict: bool = True,
    device: Union[str, int] = "cpu",
    *,
    backend: str = "mmap",
) -> Tuple[List[str], List[str]]:
    """Loads ``filename`` into ``model``, restoring shared (tied) tensors.

    Args:
        model (`torch.nn.Module`): the model to load into.
        filename (`str`, or `os.PathLike`): the file to read.
        strict (`bool`, defaults to `True`): raise on missing or unexpected keys.
        device (`str` or `int`, defaults to `"cpu"`): where the tensors go.
        backend (`str`, defaults to `"mmap"`): `"mmap"` or `"pread"`.

    Returns:
        `(missing, unexpected)`: names of the model not loaded, and names of
        the file not used.
    """
    state_dict = load_file(filename, device=device, backend=backend)
    model_state = model.state_dict()
    to_removes = _remove_duplicate_names(model_state, preferred_names=state_dict.keys())
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    missing = set(missing)
    for aliases in to_removes.values():
        for alias in aliases:
            if alias in missing:
                missing.remove(alias)
            else:
                unexpected.append(alias)
    if strict and (missing or unexpected):
        error = f"Error(s) in loading state_dict for {model.__class__.__name__}:"
        if missing:
            keys = ", ".join(f'"{k}"' for k in sorted(missing))
            error += f"\n    Missing key(s) in state_dict: {keys}"
        if unexpected:
            keys = ", ".join(f'"{k}"' for k in sorted(unexpected))
            error += f"\n    Unexpected key(s) in state_dict: {keys}"
        raise RuntimeError(error)
    return missing, unexpected


def save(tensors: Dict[str, torch.Tensor], metadata: Optional[Dict[str, str]] = None) -> bytes:
    """Serializes a dict of tensors to safetensors bytes.

    Args:
        tensors (`Dict[str, torch.Tensor]`): contiguous, dense tensors that do
            not share memory.
        metadata (`Dict[str, str]`, *optional*): free text metadata.

    Returns:
        `bytes`: the file's content.
    """
    keep_alive = []
    return serialize(_flatten_as_ptr(tensors, keep_alive), metadata=metadata)


def save_file(
    tensors: Dict[str, torch.Tensor],
    filename: Union[str, os.PathLike],
    metadata: Optional[Dict[str, str]] = None,
):
    """Writes a dict of tensors to ``filename`` in safetensors format.

    The file is written under a temporary name, synced and renamed, so a
    reader never sees a partial file. Do not modify the tensors meanwhile.

    Args:
        tensors (`Dict[str, torch.Tensor]`): contiguous, dense tensors that do
            not share memory.
        filename (`str`, or `os.PathLike`): the file to write.
        metadata (`Dict[str, str]`, *optional*): free text metadata.
    """
    keep_alive = []
    serialize_file(_flatten_as_ptr(tensors, keep_alive), filename, metadata=metadata)


def load_file(
    filename: Union[str, os.PathLike],
    device: Union[str, int] = "cpu",
    *,
    backend: str = "mmap",
) -> Dict[str, torch.Tensor]:
    """Loads a safetensors file as a dict of torch tensors.

    On the CPU with the `"mmap"` backend the tensors are zero-copy,
    copy-on-write views of the mapped file.

    Args:
        filename (`str`, or `os.PathLike`): the file to read.
        device (`str` or `int`, defaults to `"cpu"`): where the tensors go.
        backend (`str`, defaults to `"mmap"`): `"mmap"` or `"pread"`.

    Returns:
        `Dict[str, torch.Tensor]`: the tensors, in file order.
    """
    with safe_open(filename, framework="pt", device=device, backend=backend) as f:
        return f.get_tensors()


def load_checkpoint(
    path_or_dir_or_files: Union[str, os.PathLike, Iterable[Union[str, os.PathLike]]],
    device: Union[str, int] = "cpu",
    threads: Optional[int] = None,
    memory_budget: Optional[Union[int, str]] = None,
) -> Dict[str, torch.Tensor]:
    """Loads a whole (sharded) checkpoint with the parallel loader.

    Every tensor is allocated up front (``torch.empty``) and the files are
    read straight into them by a pool of threads, with the GIL released:
    buffered reads where the file is in the page cache, ``O_DIRECT`` where it
    is not. On ``"cuda:N"``, when the loader can reach CUDA, the bytes go
    straight to the GPU through pinned staging buffers; otherwise they are
    loaded on the CPU and moved with ``.to(device)``. The tensors own their
    memory (no mapping of the file stays open).

    Args:
        path_or_dir_or_files: a ``.safetensors`` file, a
            ``*.safetensors.index.json``, a folder holding either, or a list
            of ``.safetensors`` files (no tensor name may repeat).
        device (`str` or `int`, defaults to `"cpu"`): where the tensors go.
        threads (`int`, *optional*): reader threads (default: one per core,
            4 to 16).
        memory_budget (`int` or `str`, *optional*): bytes of staging memory
            the loader may hold (default 512 MiB); an int or a size like
            ``"256MB"``. On CUDA this memory is pinned, and kept for the next
            load until :func:`release_pinned_memory`.

    Returns:
        `Dict[str, torch.Tensor]`: every tensor, shard by shard in file order.
    """
    from . import _loader

    return _loader.load_plan(_loader.open_plan(path_or_dir_or_files), device, threads, memory_budget)


def iter_checkpoint(
    path_or_dir_or_files: Union[str, os.PathLike, Iterable[Union[str, os.PathLike]]],
    device: Union[str, int] = "cpu",
    threads: Optional[int] = None,
    memory_budget: Optional[Union[int, str]] = None,
) -> Iterator[Tuple[str, torch.Tensor]]:
    """Yields ``(name, tensor)`` of a whole (sharded) checkpoint as each
    tensor finishes loading (completion order), while the parallel loader
    keeps reading in the background with the GIL released.

    Arguments as for :func:`load_checkpoint`; on a non-CPU device each tensor
    is moved with ``.to(device)`` as it arrives. Every tensor is yielded once.
    A read error is raised after the tensors completed before it.
    """
    from . import _loader

    plan = _loader.open_plan(path_or_dir_or_files)
    return _loader.iter_plan(plan, device, threads, memory_budget)


def release_pinned_memory() -> int:
    """Frees the pinned host buffers the CUDA loader keeps between loads
    (pinning is slow, and checkpoints are often loaded shard by shard);
    returns the bytes freed, 0 when CUDA is unavailable."""
    from ._safeweights import _cuda_release_pinned

    return _cuda_release_pinned()


def load(data: bytes) -> Dict[str, torch.Tensor]:
    """Loads safetensors bytes (``bytes``, ``bytearray`` or any buffer) as torch tensors.

    The header is parsed from the first bytes; each tensor's bytes are
    copied once, into a buffer of its own.

    Args:
        data (`bytes`): the content of a safetensors file.

    Returns:
        `Dict[str, torch.Tensor]`: the tensors, on the CPU, in file order.
    """
    view = memoryview(data).cast("B")
    # The header is parsed from the first bytes only; each tensor's bytes are
    # then copied once, into the buffer that tensor is a view of (as the
    # reference does: per-tensor buffers reuse freed memory on repeated loads).
    n = int.from_bytes(view[:8], "little") if len(view) >= 8 else 0
    f = _File.header_of(bytes(view[: 8 + min(n, len(view))]), len(view))
    result = {}
    for name, code, shape, start, stop in f.entries():
        if start == stop:
            result[name] = torch.empty(_frameworks.torch_shape(code, shape), dtype=_frameworks.torch_dtype(code))
        else:
            own = torch.frombuffer(bytearray(view[start:stop]), dtype=torch.uint8)
            result[name] = _frameworks._torch_from_u8(own, code, shape)
    return result


def _view2torch(safeview) -> Dict[str, torch.Tensor]:
    """Tensors from ``deserialize``'s output."""
    result = {}
    for name, v in safeview:
        code = v["dtype"]
        if len(v["data"]) == 0:
            result[name] = torch.empty(_frameworks.torch_shape(code, v["shape"]), dtype=_frameworks.torch_dtype(code))
        else:
            result[name] = _frameworks._torch_from_u8(
                torch.frombuffer(v["data"], dtype=torch.uint8), code, v["shape"]
            )
    return result


def _to_ndarray(tensor: torch.Tensor):
    """A uint8 numpy view (little-endian) of a tensor's bytes, and the tensor it views."""
    import ctypes

    import numpy as np

    if tensor.device.type != "cpu":
        tensor = tensor.to("cpu")
    total = tensor.nelement() * _SIZE[tensor.dtype]
    ptr = tensor.data_ptr()
    if ptr == 0 or total == 0:
        return np.empty(0, dtype=np.uint8), tensor
    data = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_ubyte)), (total,))
    if sys.byteorder == "big" and _SIZE[tensor.dtype] > 1:
        width = {2: np.int16, 4: np.int32, 8: np.int64}[_SIZE[tensor.dtype]]
        if tensor.dtype is torch.complex64:
            width = np.float32
        data = data.view(width).byteswap(inplace=False).view(np.uint8)
    return data, tensor


def _tobytes(tensor: torch.Tensor, name: str) -> bytes:
    """A tensor's little-endian bytes (kept for callers of older safetensors)."""
    if not tensor.is_contiguous():
        raise ValueError(
            f"You are trying to save a non contiguous tensor: `{name}` which is not allowed. It either means you"
            " are trying to save tensors which are reference of each other in which case it's recommended to save"
            " only the full tensors, and reslice at load time, or simply call `.contiguous()` on your tensor to"
            " pack it before saving."
        )
    data, _ = _to_ndarray(tensor)
    return data.tobytes()


def _evaluate_tensors_for_save(tensors: Dict[str, torch.Tensor]) -> None:
    """Refuses what cannot be saved: non-dicts, non-tensors, sparse and shared tensors."""
    if not isinstance(tensors, dict):
        raise ValueError(f"Expected a dict of [str, torch.Tensor] but received {type(tensors)}")
    sparse = []
    for k, v in tensors.items():
        if not isinstance(v, torch.Tensor):
            raise ValueError(f"Key `{k}` is invalid, expected torch.Tensor but received {type(v)}")
        if v.layout != torch.strided:
            sparse.append(k)
    if sparse:
        raise ValueError(
            f"You are trying to save a sparse tensors: `{sparse}` which this library does not support."
            " You can make it a dense tensor before saving with `.to_dense()` but be aware this might"
            " make a much larger file than needed."
        )
    failing = [names for names in _find_shared_tensors(tensors) if len(names) > 1]
    if failing:
        raise RuntimeError(
            f"""
            Some tensors share memory, this will lead to duplicate memory on disk and potential differences when loading them again: {failing}.
            A potential way to correctly save your model is to use `save_model`.
            More information at https://huggingface.co/docs/safetensors/torch_shared_tensors
            """
        )


def _flatten_as_ptr(tensors: Dict[str, torch.Tensor], keep_alive_buffer: List) -> Dict[str, TensorSpec]:
    """``TensorSpec``s pointing at the tensors' memory; what they point to is
    appended to ``keep_alive_buffer``, which the caller holds during the write."""
    _evaluate_tensors_for_save(tensors)
    specs = {}
    for k, v in tensors.items():
        if not v.is_contiguous():
            raise ValueError(
                f"You are trying to save a non contiguous tensor: `{k}` which is not allowed. It either means you"
                " are trying to save tensors which are reference of each other in which case it's recommended to save"
                " only the full tensors, and reslice at load time, or simply call `.contiguous()` on your tensor to"
                " pack it before saving."
            )
        arr, ref = _to_ndarray(v)
        keep_alive_buffer.append((arr, ref))
        specs[k] = TensorSpec(
            dtype=str(v.dtype).split(".")[-1],
            shape=list(v.shape),
            data_ptr=arr.ctypes.data if arr.nbytes else 0,
            data_len=arr.nbytes,
        )
    return specs


def _flatten(tensors: Dict[str, torch.Tensor]) -> Dict[str, Dict[str, Any]]:
    """The older dict form, ``{name: {"dtype", "shape", "data"}}`` with the
    data as bytes (kept for callers of safetensors before 0.8)."""
    _evaluate_tensors_for_save(tensors)
    return {
        k: {
            "dtype": str(v.dtype).split(".")[-1],
            "shape": list(v.shape),
            "data": _tobytes(v, k),
        }
        for k, v in tensors.items()
    }


_ = deserialize
