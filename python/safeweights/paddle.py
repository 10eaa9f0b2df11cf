"""Paddle helpers: ``save``, ``save_file``, ``load``, ``load_file``.

Paddle is imported when this module is; tensors go through NumPy."""

from typing import Any, Dict

try:
    import paddle
except ImportError as _e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "safeweights.paddle needs paddle, which could not be imported: pip install paddlepaddle"
    ) from _e

from . import _via_numpy

__all__ = ["save", "save_file", "load", "load_file"]


def _to_np(tensors: Dict[str, Any]) -> Dict[str, Any]:
    import numpy as np

    return {k: v.detach().cpu().numpy() for k, v in tensors.items()}


def _from_np(arrays: Dict[str, Any], device: str = "cpu") -> Dict[str, Any]:
    return {k: paddle.to_tensor(v, place=device) for k, v in arrays.items()}


save, save_file, load, load_file = _via_numpy.define(
    __name__, "Paddle", "paddle", _to_np, _from_np, device=True
)
