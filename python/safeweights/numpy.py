"""NumPy helpers: ``save``, ``save_file``, ``load``, ``load_file``."""

import os
import sys
from typing import Dict, List, Optional, Union

try:
    import numpy as np
except ImportError as _e:  # pragma: no cover - depends on the environment
    raise ImportError("safeweights.numpy needs NumPy, which could not be imported: pip install numpy") from _e

from . import _frameworks
from ._safeweights import TensorSpec, _File, deserialize, serialize, serialize_file
from ._open import safe_open

__all__ = ["save", "save_file", "load", "load_file"]


def _is_little_endian(tensor: np.ndarray) -> bool:
    order = tensor.dtype.byteorder
    if order == "=":
        return sys.byteorder == "little"
    if order in ("|", "<"):
        return True
    if order == ">":
        return False
    raise ValueError(f"Unexpected byte order {order}")


def _flatten(tensor_dict: Dict[str, np.ndarray], keep_alive_buffer: List) -> Dict[str, TensorSpec]:
    """``TensorSpec``s over the arrays' memory (byte-swapped copies for
    big-endian arrays, kept alive in ``keep_alive_buffer``)."""
    specs = {}
    for k, v in tensor_dict.items():
        arr = v
        if not _is_little_endian(arr):
            arr = arr.byteswap(inplace=False).view(arr.dtype.newbyteorder("<"))
        if not arr.flags.c_contiguous:
            arr = arr.copy(order="C")
        keep_alive_buffer.append(arr)
        specs[k] = TensorSpec(
            dtype=arr.dtype.name,
            shape=list(arr.shape),
            data_ptr=arr.ctypes.data if arr.nbytes else 0,
            data_len=arr.nbytes,
        )
    return specs


def save(tensor_dict: Dict[str, np.ndarray], metadata: Optional[Dict[str, str]] = None) -> bytes:
    """Serializes a dict of arrays to safetensors bytes.

    Args:
        tensor_dict (`Dict[str, np.ndarray]`): the arrays.
        metadata (`Dict[str, str]`, *optional*): free text metadata.

    Returns:
        `bytes`: the file's content.
    """
    keep_alive = []
    return serialize(_flatten(tensor_dict, keep_alive), metadata=metadata)


def save_file(
    tensor_dict: Dict[str, np.ndarray],
    filename: Union[str, os.PathLike],
    metadata: Optional[Dict[str, str]] = None,
) -> None:
    """Writes a dict of arrays to ``filename`` (atomically).

    Args:
        tensor_dict (`Dict[str, np.ndarray]`): the arrays.
        filename (`str`, or `os.PathLike`): the file to write.
        metadata (`Dict[str, str]`, *optional*): free text metadata.
    """
    keep_alive = []
    serialize_file(_flatten(tensor_dict, keep_alive), filename, metadata=metadata)


def load(data: bytes) -> Dict[str, np.ndarray]:
    """Loads safetensors bytes (``bytes``, ``bytearray`` or any buffer) as arrays.

    Args:
        data (`bytes`): the content of a safetensors file.

    Returns:
        `Dict[str, np.ndarray]`: the arrays, in file order.
    """
    if not isinstance(data, bytes):
        data = bytes(memoryview(data))
    f = _File.from_bytes(data)
    whole = bytearray(data)
    result = {}
    for name, code, shape, start, stop in f.entries():
        dtype = _frameworks.numpy_dtype(code)
        if stop == start:
            arr = np.empty(shape, dtype=dtype)
        else:
            arr = np.frombuffer(whole, dtype=dtype, count=(stop - start) // dtype.itemsize, offset=start)
            arr = arr.reshape(shape)
        if sys.byteorder == "big":
            arr = arr.byteswap(inplace=False)
        result[name] = arr
    return result


def load_file(filename: Union[str, os.PathLike], *, backend: str = "mmap") -> Dict[str, np.ndarray]:
    """Loads a safetensors file as a dict of arrays.

    Args:
        filename (`str`, or `os.PathLike`): the file to read.
        backend (`str`, defaults to `"mmap"`): `"mmap"` or `"pread"`.

    Returns:
        `Dict[str, np.ndarray]`: the arrays, in file order.
    """
    with safe_open(filename, framework="np", backend=backend) as f:
        return f.get_tensors()


def _getdtype(dtype_str: str) -> np.dtype:
    return _frameworks.numpy_dtype(dtype_str)


def _view2np(safeview) -> Dict[str, np.ndarray]:
    """Arrays from ``deserialize``'s output."""
    return {
        k: np.frombuffer(v["data"], dtype=_getdtype(v["dtype"])).reshape(v["shape"]) for k, v in safeview
    }


_ = deserialize
