"""safeweights: a drop-in stand-in for the ``safetensors`` package, on the
safeweights Rust core.

The top level mirrors ``safetensors``: :func:`safe_open`, :func:`serialize`,
:func:`serialize_file`, :func:`deserialize`, :class:`TensorSpec`,
:class:`SafetensorError` and ``__version__``. Framework helpers live in
``safeweights.torch``, ``.numpy``, ``.flax``, ``.tensorflow``, ``.mlx`` and
``.paddle``. :func:`install_as_safetensors` makes unmodified libraries that
``import safetensors`` use this package.

Beyond ``safetensors``: :func:`convert` (PyTorch / NumPy checkpoints to
safetensors and back, without executing any code), :func:`scan` (finds model
files that can run code), :func:`diff` (compares two checkpoints tensor by
tensor), :func:`merge` (writes a sharded checkpoint into one file) and, in ``safeweights.torch``, ``load_checkpoint`` /
``iter_checkpoint`` (parallel loading of whole, sharded checkpoints).
"""

from ._safeweights import (  # noqa: F401
    ConversionError,
    SafetensorError,
    SafetensorHeaderError,
    SafetensorIOError,
    TensorNotFoundError,
    ScanReport,
    TensorSpec,
    __version__,
    convert,
    deserialize,
    diff,
    merge,
    serialize,
    scan,
    serialize_file,
)
from ._open import _safe_open_handle, safe_open  # noqa: F401

# The exception classes are defined by the native module; they are importable
# (and so picklable across processes) under this package's name.
for _cls in (ConversionError, SafetensorError, SafetensorHeaderError, SafetensorIOError, TensorNotFoundError):
    _cls.__module__ = "safeweights"
del _cls
from ._install import install_as_safetensors  # noqa: F401

__all__ = [
    "ConversionError",
    "SafetensorError",
    "SafetensorHeaderError",
    "SafetensorIOError",
    "TensorNotFoundError",
    "ScanReport",
    "TensorSpec",
    "__version__",
    "convert",
    "deserialize",
    "diff",
    "install_as_safetensors",
    "merge",
    "safe_open",
    "scan",
    "serialize",
    "serialize_file",
]
