"""Shared plumbing of the framework modules whose tensors go through NumPy
(``flax``, ``mlx``, ``paddle``, ``tensorflow``): each passes its two
conversions to :func:`define` and gets ``save``, ``save_file``, ``load`` and
``load_file``. The frameworks themselves are imported by those modules."""

import os
from typing import Any, Callable, Dict, Optional, Tuple, Union

from . import numpy as _np_helpers
from ._open import safe_open

_SAVE_DOC = """Serializes a dict of {label} tensors to safetensors bytes.

    Args:
        tensors (`Dict[str, Tensor]`): the tensors.
        metadata (`Dict[str, str]`, *optional*): free text metadata.

    Returns:
        `bytes`: the file's content.
    """

_SAVE_FILE_DOC = """Writes a dict of {label} tensors to ``filename`` (atomically).

    Args:
        tensors (`Dict[str, Tensor]`): the tensors.
        filename (`str`, or `os.PathLike`): the file to write.
        metadata (`Dict[str, str]`, *optional*): free text metadata.
    """

_LOAD_DOC = """Loads safetensors bytes as {label} tensors.

    Args:
        data (`bytes`): the content of a safetensors file.

    Returns:
        `Dict[str, Tensor]`: the tensors.
    """

_LOAD_FILE_DOC = """Loads a safetensors file as {label} tensors.

    Args:
        filename (`str`, or `os.PathLike`): the file to read.
        backend (`str`, defaults to `"mmap"`): `"mmap"` or `"pread"`.

    Returns:
        `Dict[str, Tensor]`: the tensors.
    """


def define(
    module: str,
    label: str,
    framework: str,
    to_np: Callable[[Dict[str, Any]], Dict[str, Any]],
    from_np: Callable[..., Dict[str, Any]],
    *,
    device: bool = False,
) -> Tuple[Callable[..., Any], ...]:
    """Returns ``(save, save_file, load, load_file)`` for the module named
    ``module``: ``to_np`` turns a dict of framework tensors into NumPy arrays,
    ``from_np`` the reverse; ``framework`` is the name ``safe_open`` knows.
    With ``device``, the loaders take a ``device`` argument (default
    ``"cpu"``), passed to ``from_np`` and ``safe_open``."""

    def save(tensors: Dict[str, Any], metadata: Optional[Dict[str, str]] = None) -> bytes:
        return _np_helpers.save(to_np(tensors), metadata=metadata)

    def save_file(
        tensors: Dict[str, Any],
        filename: Union[str, os.PathLike],
        metadata: Optional[Dict[str, str]] = None,
    ) -> None:
        _np_helpers.save_file(to_np(tensors), filename, metadata=metadata)

    if device:

        def load(data: bytes, device: str = "cpu") -> Dict[str, Any]:
            return from_np(_np_helpers.load(data), device)

        def load_file(
            filename: Union[str, os.PathLike], device: str = "cpu", *, backend: str = "mmap"
        ) -> Dict[str, Any]:
            with safe_open(filename, framework=framework, device=device, backend=backend) as f:
                return f.get_tensors()

    else:

        def load(data: bytes) -> Dict[str, Any]:  # type: ignore[misc]
            return from_np(_np_helpers.load(data))

        def load_file(  # type: ignore[misc]
            filename: Union[str, os.PathLike], *, backend: str = "mmap"
        ) -> Dict[str, Any]:
            with safe_open(filename, framework=framework, backend=backend) as f:
                return f.get_tensors()

    out = []
    for fn, doc in (
        (save, _SAVE_DOC),
        (save_file, _SAVE_FILE_DOC),
        (load, _LOAD_DOC),
        (load_file, _LOAD_FILE_DOC),
    ):
        fn.__module__ = module
        fn.__qualname__ = fn.__name__
        fn.__doc__ = doc.format(label=label)
        out.append(fn)
    return tuple(out)
