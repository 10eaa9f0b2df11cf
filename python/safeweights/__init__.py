"""safeweights: a drop-in stand-in for the ``safetensors`` package, on the
safeweights Rust core.

The top level mirrors ``safetensors``: :func:`safe_open`, :func:`serialize`,
:func:`serialize_file`, :func:`deserialize`, :class:`TensorSpec`,
:class:`SafetensorError` and ``__version__``. Framework helpers live in
``safeweights.torch``, ``.numpy``, ``.flax``, ``.tensorflow``, ``.mlx`` and
``.paddle``. :func:`install_as_safetensors` makes unmodified libraries that
``import safetensors`` use this package.
"""

from ._safeweights import (  # noqa: F401
    SafetensorError,
    SafetensorHeaderError,
    SafetensorIOError,
    TensorNotFoundError,
    TensorSpec,
    __version__,
    deserialize,
    serialize,
    serialize_file,
)
from ._open import _safe_open_handle, safe_open  # noqa: F401
from ._install import install_as_safetensors  # noqa: F401

__all__ = [
    "SafetensorError",
    "SafetensorHeaderError",
    "SafetensorIOError",
    "TensorNotFoundError",
    "TensorSpec",
    "__version__",
    "deserialize",
    "install_as_safetensors",
    "safe_open",
    "serialize",
    "serialize_file",
]
