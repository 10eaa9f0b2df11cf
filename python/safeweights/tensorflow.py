"""TensorFlow helpers: ``save``, ``save_file``, ``load``, ``load_file``.

TensorFlow is imported when this module is; tensors go through NumPy."""

from typing import Any, Dict

try:
    import tensorflow as tf
except ImportError as _e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "safeweights.tensorflow needs tensorflow, which could not be imported: pip install tensorflow"
    ) from _e

from . import _via_numpy

__all__ = ["save", "save_file", "load", "load_file"]


def _to_np(tensors: Dict[str, Any]) -> Dict[str, Any]:
    import numpy as np

    return {k: v.numpy() for k, v in tensors.items()}


def _from_np(arrays: Dict[str, Any]) -> Dict[str, Any]:
    return {k: tf.convert_to_tensor(v) for k, v in arrays.items()}


save, save_file, load, load_file = _via_numpy.define(
    __name__, "TensorFlow", "tf", _to_np, _from_np
)
