"""Flax/JAX helpers: ``save``, ``save_file``, ``load``, ``load_file``.

Flax/JAX is imported when this module is; tensors go through NumPy."""

import os
from typing import Any, Dict, Optional, Union

try:
    import jax.numpy as jnp
except ImportError as _e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "safeweights.flax needs jax, which could not be imported: pip install jax"
    ) from _e

from . import numpy as _np_helpers
from ._open import safe_open

__all__ = ["save", "save_file", "load", "load_file"]


def _to_np(tensors: Dict[str, Any]) -> Dict[str, Any]:
    import numpy as np

    return {k: np.asarray(v) for k, v in tensors.items()}


def _from_np(arrays: Dict[str, Any]) -> Dict[str, Any]:
    return {k: jnp.array(v) for k, v in arrays.items()}


def save(tensors: Dict[str, Any], metadata: Optional[Dict[str, str]] = None) -> bytes:
    """Serializes a dict of Flax/JAX tensors to safetensors bytes.

    Args:
        tensors (`Dict[str, Tensor]`): the tensors.
        metadata (`Dict[str, str]`, *optional*): free text metadata.

    Returns:
        `bytes`: the file's content.
    """
    return _np_helpers.save(_to_np(tensors), metadata=metadata)


def save_file(
    tensors: Dict[str, Any],
    filename: Union[str, os.PathLike],
    metadata: Optional[Dict[str, str]] = None,
) -> None:
    """Writes a dict of Flax/JAX tensors to ``filename`` (atomically).

    Args:
        tensors (`Dict[str, Tensor]`): the tensors.
        filename (`str`, or `os.PathLike`): the file to write.
        metadata (`Dict[str, str]`, *optional*): free text metadata.
    """
    _np_helpers.save_file(_to_np(tensors), filename, metadata=metadata)


def load(data: bytes) -> Dict[str, Any]:
    """Loads safetensors bytes as Flax/JAX tensors.

    Args:
        data (`bytes`): the content of a safetensors file.

    Returns:
        `Dict[str, Tensor]`: the tensors.
    """
    return _from_np(_np_helpers.load(data))


def load_file(filename: Union[str, os.PathLike], *, backend: str = "mmap") -> Dict[str, Any]:
    """Loads a safetensors file as Flax/JAX tensors.

    Args:
        filename (`str`, or `os.PathLike`): the file to read.
        backend (`str`, defaults to `"mmap"`): `"mmap"` or `"pread"`.

    Returns:
        `Dict[str, Tensor]`: the tensors.
    """
    with safe_open(filename, framework="flax", backend=backend) as f:
        return f.get_tensors()
