"""``safe_open``: lazy access to a safetensors file, with tensors built for a
framework. The file format itself (header, validation, slicing, reads) is the
Rust core's, reached through ``safeweights._safeweights._File``."""

import os

from . import _frameworks
from ._device import _parse_device
from ._safeweights import SafetensorError, _File

_FRAMEWORKS = {
    "pt": "pt",
    "torch": "pt",
    "pytorch": "pt",
    "np": "np",
    "numpy": "np",
    "tf": "tf",
    "tensorflow": "tf",
    "jax": "flax",
    "flax": "flax",
    "mlx": "mlx",
    "paddle": "paddle",
}


def _parse_framework(framework):
    try:
        return _FRAMEWORKS[str(framework).lower()]
    except KeyError:
        raise SafetensorError(f"framework {framework} is invalid") from None


class safe_open:
    """Opens a safetensors file lazily and returns tensors as asked.

    Args:
        filename (`str`, or `os.PathLike`): the file to open.
        framework (`str`): the framework of the returned tensors: `pt`, `np`,
            `tf`, `flax` (or `jax`), `mlx`, `paddle`.
        device (`str` or `int`, defaults to `"cpu"`): where the tensors go
            (`"cpu"`, `"cuda"`, `"cuda:1"`, `1`, `"mps"`, ...). With torch on
            CUDA, `get_tensor`/`get_tensors` use the parallel loader's CUDA
            path (file to GPU through pinned buffers) when it can reach CUDA;
            other non-CPU tensors are read on the CPU, then moved.
        backend (`str`, keyword-only, defaults to `"mmap"`): `"mmap"` maps the
            file (torch CPU tensors are zero-copy views of the mapping);
            `"pread"` reads each tensor with positioned reads: the safe choice
            for files that others may change or truncate while they are open.
        strict (`bool`, keyword-only, defaults to `True`): also reject what the
            reference tolerates (duplicate JSON keys, control characters in
            names); `False` reads exactly what the reference reads.

    Usable as a context manager; the file is closed on exit, after which
    `get_tensor` and friends raise `SafetensorError("File is closed")`.
    Tensors and slices already obtained stay valid.
    """

    def __init__(self, filename, framework, device="cpu", *, backend="mmap", strict=True, _file=None):
        self._framework = _parse_framework(framework)
        self._device = _parse_device(device)
        if _file is None:
            _file = _File(os.fspath(filename), backend, strict)
        self._file = _file
        self._filename = _file.name
        self._backend = backend
        self._storage = None

    # -- context manager -------------------------------------------------

    def __enter__(self):
        """Start the context manager."""
        return self

    def __exit__(self, _exc_type, _exc_value, _traceback):
        """Close the file."""
        self._file = None
        self._storage = None

    def _handle(self):
        f = self._file
        if f is None:
            raise SafetensorError("File is closed")
        return f

    # -- header ----------------------------------------------------------

    def keys(self):
        """Returns the names of the tensors in the file, sorted.

        Returns:
            (`List[str]`): the tensor names.
        """
        return self._handle().keys()

    def offset_keys(self):
        """Returns the names of the tensors in the file, ordered by offset.

        Returns:
            (`List[str]`): the tensor names.
        """
        return self._handle().offset_keys()

    def metadata(self):
        """Returns the free-form ``__metadata__`` of the header, or ``None``.

        Returns:
            (`Dict[str, str]` or `None`): the metadata.
        """
        return self._handle().metadata()

    # -- tensors ---------------------------------------------------------

    def _build(self, f, entry):
        return _frameworks.build(self, f, entry)

    def get_tensor(self, name):
        """Returns a full tensor.

        Args:
            name (`str`): the tensor's name.

        Returns:
            (`Tensor`): the tensor, in the framework and on the device the file
            was opened for.
        """
        f = self._handle()
        if self._cuda_engine():
            return self._load_engine(f, [name])[name]
        return self._build(f, f.entry(name))

    def get_tensors(self):
        """Returns every tensor in the file, as a dict keyed by name, in file order.

        Returns:
            (`Dict[str, Tensor]`): all tensors.
        """
        f = self._handle()
        if self._cuda_engine():
            return self._load_engine(f, None)
        build = self._build
        return {entry[0]: build(f, entry) for entry in f.entries()}

    def _cuda_engine(self):
        """Whether torch tensors for this device come straight from the
        parallel loader's CUDA path (else: read on the CPU, then moved)."""
        if self._framework != "pt" or not self._device.startswith("cuda"):
            return False
        from . import _loader

        return _loader.engine_cuda_index(self._device) is not None

    def _load_engine(self, f, names):
        from . import _loader

        return _loader.load_plan(_loader._Plan.for_file(f, names), self._device)

    def get_slice(self, name):
        """Returns a lazy slice object for a tensor.

        Index it (``f.get_slice("w")[1:, ::2]``) to read only the selected
        part; ``get_shape()`` and ``get_dtype()`` read nothing.

        Args:
            name (`str`): the tensor's name.

        Returns:
            (`PySafeSlice`): the slice object.
        """
        f = self._handle()
        return PySafeSlice(self, f, f.entry(name))

    def __repr__(self):
        state = "closed" if self._file is None else "open"
        return f"<safeweights.safe_open {self._filename!r} framework={self._framework!r} device={self._device!r} {state}>"


def _is_full(index):
    if index is Ellipsis:
        return True
    return isinstance(index, slice) and index.start is None and index.stop is None and index.step in (None, 1)


def _is_everything(index, ndim):
    """Whether ``index`` selects the whole tensor (then no copy is needed)."""
    if not isinstance(index, tuple):
        index = (index,)
    ellipses = sum(1 for i in index if i is Ellipsis)
    return ellipses <= 1 and len(index) - ellipses <= ndim and all(_is_full(i) for i in index)


def _is_int(i):
    if isinstance(i, bool):
        return False
    try:
        import operator

        operator.index(i)
    except TypeError:
        return False
    return True


def _native(index):
    """Whether the core's slicing expresses ``index``: ints, slices and one
    ellipsis, alone or in a tuple."""
    items = index if isinstance(index, tuple) else (index,)
    return all(i is Ellipsis or isinstance(i, slice) or _is_int(i) for i in items)


def _unsupported(index, ndim):
    """The reference's error for an index its byte-level slicing refuses."""
    if isinstance(index, list):
        return SafetensorError("Non empty lists are not implemented")
    items = index if isinstance(index, tuple) else (index,)
    ellipses = sum(1 for i in items if i is Ellipsis)
    expansion = max(ndim - (len(items) - ellipses), 0)
    dim = 0
    for i in items:
        if not (i is Ellipsis or isinstance(i, slice) or _is_int(i)):
            break
        dim += expansion if i is Ellipsis else 1
    return SafetensorError(f"Unsupported slice index at position {dim}: expected slice, int, or ellipsis")


class _SliceError(SafetensorError, IndexError):
    """A slice the reference's byte-level slicing refuses: its
    ``SafetensorError``, and an ``IndexError`` as Python indexing raises."""


def _slice_error(message, kind):
    e = _SliceError(message)
    e.kind = kind
    return e


def _bound(b):
    return "" if b is None else str(b)


def _reference_slice_error(index, shape):
    """For frameworks other than torch, the error the reference raises for an
    index its byte-level slicing refuses (negative ints past the start, bounds
    past the end, too many indices), with its message; ``None`` when the
    reference accepts it. Negative slice bounds and steps, which the reference
    cannot take, are left to the core (an addition of ours)."""
    items = index if isinstance(index, tuple) else (index,)
    explicit = [i for i in items if i is not Ellipsis]
    expansion = max(len(shape) - len(explicit), 0)
    shown, bounds = [], []  # per indexed dimension: (start, stop) or None
    for i in items:
        if i is Ellipsis:
            shown += [":"] * expansion
            bounds += [(None, None)] * expansion
            continue
        dim = len(bounds)
        size = shape[dim] if dim < len(shape) else 0
        if isinstance(i, slice):
            text = f"{_bound(i.start)}:{_bound(i.stop)}"
            if i.step not in (None, 1):
                text += f":{i.step}"
            shown.append(text)
            plain = all(v is None or (_is_int(v) and v >= 0) for v in (i.start, i.stop)) and (
                i.step is None or (_is_int(i.step) and i.step > 0)
            )
            bounds.append((i.start, i.stop) if plain else "ours")
        else:
            n = int(i)
            if n < 0:
                if n + size < 0:
                    return _slice_error(f"Invalid index {n} for dimension {dim} of size {size}", "index_out_of_range")
                n += size
            shown.append(str(n))
            bounds.append((n, n + 1))
    where = f"Error during slicing [{', '.join(shown)}] with shape {list(shape)}"
    if len(bounds) > len(shape):
        return _slice_error(f"{where}: more slicing indexes than dimensions in tensor", "too_many_indices")
    # The reference checks from the innermost dimension outwards.
    for dim in reversed(range(len(bounds))):
        if bounds[dim] == "ours":
            continue
        start, stop = bounds[dim]
        size = shape[dim]
        start = 0 if start is None else start
        stop = size if stop is None else stop
        if start >= size or stop > size:
            asked = start if start >= size else max(stop - 1, 0)
            return _slice_error(
                f"{where}: index {asked} out of bounds for tensor dimension #{dim} of size {size}", "index_out_of_range"
            )
    return None


class PySafeSlice:
    """A tensor not yet read: its shape and dtype, and indexing that reads only
    the selected elements."""

    def __init__(self, owner, f, entry):
        self._owner = owner
        self._file = f
        self._entry = entry

    def get_shape(self):
        """The tensor's shape (logical element shape).

        Returns:
            (`List[int]`): the shape.
        """
        return list(self._entry[2])

    def get_dtype(self):
        """The tensor's dtype as its format code (``"F32"``, ``"BF16"``, ...).

        Returns:
            (`str`): the dtype.
        """
        return self._entry[1]

    def __len__(self):
        shape = self._entry[2]
        if not shape:
            raise TypeError("len() of a 0-d tensor")
        return shape[0]

    def __getitem__(self, index):
        name, dtype = self._entry[0], self._entry[1]
        if isinstance(index, list) and not index:
            # An empty list selects nothing along the first dimension.
            index = slice(0, 0)
        if not _native(index):
            if self._owner._framework != "pt":
                raise _unsupported(index, len(self._entry[2]))
            # As the reference does for torch: the whole tensor (a view of
            # the mapping), indexed by torch (None, lists, masks, tensors).
            return self._owner._build(self._file, self._entry)[index]
        if _is_everything(index, len(self._entry[2])):
            return self._owner._build(self._file, self._entry)
        if self._owner._framework != "pt":
            refused = _reference_slice_error(index, list(self._entry[2]))
            if refused is not None:
                refused.file, refused.tensor, refused.offset = self._owner._filename, name, None
                raise refused
        shape, data = self._file.read_slice(name, index)
        return _frameworks.from_bytes(self._owner, dtype, shape, data)

    def __repr__(self):
        return f"<safeweights.PySafeSlice {self._entry[0]!r} dtype={self._entry[1]} shape={list(self._entry[2])}>"


def _safe_open_handle(handle, framework, device="cpu", *, backend="mmap", strict=True):
    """Opens a safetensors file from an open Python file object.

    A file object with a real path (``handle.name``) is opened by path; any
    other readable object (e.g. ``io.BytesIO``, fsspec files) is read into
    memory.

    Args:
        handle: a binary file object.
        framework (`str`), device, backend: as for `safe_open`.

    Returns:
        (`safe_open`): the open file.
    """
    name = getattr(handle, "name", None)
    if isinstance(name, (str, bytes, os.PathLike)) and os.path.isfile(name):
        return safe_open(name, framework, device, backend=backend, strict=strict)
    if hasattr(handle, "seek"):
        handle.seek(0)
    data = handle.read()
    if not isinstance(data, (bytes, bytearray)):
        data = bytes(data)
    return safe_open(None, framework, device, backend=backend, _file=_File.from_bytes(data, strict))


__all__ = ["safe_open", "_safe_open_handle", "PySafeSlice"]
