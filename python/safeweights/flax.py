"""Flax/JAX helpers: ``save``, ``save_file``, ``load``, ``load_file``.

Flax/JAX is imported when this module is; tensors go through NumPy."""

from typing import Any, Dict

try:
    import jax.numpy as jnp
except ImportError as _e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "safeweights.flax needs jax, which could not be imported: pip install jax"
    ) from _e

from . import _via_numpy

__all__ = ["save", "save_file", "load", "load_file"]


def _to_np(tensors: Dict[str, Any]) -> Dict[str, Any]:
    import numpy as np

    return {k: np.asarray(v) for k, v in tensors.items()}


def _from_np(arrays: Dict[str, Any]) -> Dict[str, Any]:
    return {k: jnp.array(v) for k, v in arrays.items()}


save, save_file, load, load_file = _via_numpy.define(
    __name__, "Flax/JAX", "flax", _to_np, _from_np
)
