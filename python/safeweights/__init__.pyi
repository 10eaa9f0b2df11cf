import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union, final

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

__version__: str

class SafetensorError(Exception):
    """Custom Python Exception for Safetensor errors.

    Every exception this package raises for a failure of the library (this
    class and its subclasses, and the `IndexError`, `ValueError`,
    `FileNotFoundError` and `PermissionError` the reference raises in some
    cases) carries these attributes; they are `None` on an exception built
    by hand."""
    kind: Optional[str]
    """What went wrong: a stable snake_case id such as `trailing_bytes`,
    `overlap`, `io`, `tensor_not_found` or `destination_exists`, listed in
    docs/errors.md."""
    file: Optional[str]
    """The file (or folder) the error is about, `<memory>` for bytes."""
    tensor: Optional[str]
    """The tensor the error is about."""
    offset: Optional[int]
    """The byte offset where the problem is, when known (a file offset; for
    a pickle, the opcode's offset in its stream)."""

class SafetensorHeaderError(SafetensorError):
    """The header breaks a rule of the format."""

class TensorNotFoundError(SafetensorError):
    """The file has no tensor of that name."""

class SafetensorIOError(SafetensorError):
    """Reading or writing the bytes failed."""

class ConversionError(SafetensorError):
    """A conversion failed or was refused; nothing was left at the destination.

    `kind` is the converter's (`destination_exists`, `unsupported_tensor`,
    `npy`, `folder`, `verification`, `io`, ...), the pickle reader's
    (`unsafe`: code in the checkpoint, `pickle`, `zip`, `invalid`, `limit`,
    `unsupported`) or the format's (`trailing_bytes`, ...)."""
    member: Optional[str]
    """The archive member holding the pickle, or the `.npz` member, where known."""

@final
class TensorSpec:
    """A tensor to serialize: framework dtype name, shape, and raw memory."""
    def __new__(cls, *, dtype: str, shape: Sequence[int], data_ptr: int, data_len: int) -> TensorSpec: ...
    @property
    def dtype(self) -> str:
        """The format code (`"F32"`, `"BF16"`, ...)."""
    @property
    def shape(self) -> List[int]:
        """The logical (header) shape; F4's last dimension is doubled."""
    @property
    def data_ptr(self) -> int:
        """The buffer's address."""
    @property
    def data_len(self) -> int:
        """The buffer's length in bytes."""

def serialize(tensor_dict: Dict[str, TensorSpec], metadata: Optional[Dict[str, str]] = None) -> bytes:
    """Serializes raw data to safetensors bytes."""

def serialize_file(
    tensor_dict: Dict[str, TensorSpec],
    filename: Union[str, "os.PathLike[str]"],
    metadata: Optional[Dict[str, str]] = None,
) -> None:
    """Serializes raw data into a file, atomically."""

def deserialize(bytes: Union[bytes, bytearray]) -> List[Tuple[str, Dict[str, Any]]]:
    """Parses safetensors bytes: `[(name, {"shape", "dtype", "data"}), ...]` in file order."""

def convert(
    src: Union[str, "os.PathLike[str]"],
    dst: Union[str, "os.PathLike[str]"],
    *,
    keep_shared: bool = False,
    metadata_leaves: bool = False,
    max_shard_size: Optional[Union[int, str]] = None,
    overwrite: bool = False,
) -> Dict[str, Any]:
    """Converts a checkpoint (PyTorch zip/legacy, .npy, .npz, safetensors, HF folder) without
    executing any of its code, verifies the output bit for bit, and returns the summary
    (`source_format`, `target_format`, `files_written`, `tensors`, `bytes`, `dropped_aliases`,
    `shared_copies`, `non_tensor_leaves`, `verified`, ...). Raises `ConversionError`."""

def diff(
    a: Union[str, "os.PathLike[str]"],
    b: Union[str, "os.PathLike[str]"],
    *,
    lenient: bool = False,
) -> Dict[str, Any]:
    """Compares two checkpoints (files, shard folders or index files) tensor by tensor,
    streaming the bytes. Returns the CLI's `diff --json` document: `a`, `b`, `equal`,
    `metadata` (`equal`, `a`, `b`), `only_in_a`, `only_in_b`, `compared`, `identical` and
    `changed`: dicts with `name`, `change` (`"dtype"`, `"shape"`, `"dtype_and_shape"` or
    `"values"`), `dtype` and `shape` (A's and B's), and for `"values"`: `differing_values`,
    `max_abs_diff` and `nonfinite_mismatches` (floats only; NaN equals NaN, -0 equals +0).
    Raises `SafetensorError` (or `FileNotFoundError`) when a side cannot be read."""

def merge(
    path: Union[str, "os.PathLike[str]"],
    output: Union[str, "os.PathLike[str]"],
    *,
    overwrite: bool = False,
    lenient: bool = False,
) -> Dict[str, Any]:
    """Writes every tensor of a (sharded) checkpoint into one safetensors file, keeping the
    first shard's metadata, atomically. Returns `source`, `output`, `shards`, `tensors`,
    `total_size` and `file_bytes`. Raises `FileExistsError` when `output` exists and not
    `overwrite`, `IsADirectoryError` when it is a folder."""

@final
class ScanReport:
    """The result of `scan`. Truthy when `exit_code == 0`."""
    @property
    def findings(self) -> List[Dict[str, Any]]:
        """Dicts: severity, rule, file, member, what, why, offset, fix."""
    @property
    def files(self) -> List[Dict[str, Any]]:
        """Files and archive members looked at: file, member, format, size."""
    @property
    def errors(self) -> List[Dict[str, Any]]:
        """Paths that could not be scanned: file, message."""
    @property
    def summary(self) -> Dict[str, Any]:
        """files, objects, findings (per severity), highest, errors."""
    @property
    def fail_on(self) -> str:
        """The threshold severity."""
    @property
    def highest(self) -> Optional[str]:
        """The highest severity found."""
    @property
    def exit_code(self) -> int:
        """2 if a path could not be scanned, else 1 if a finding is at or above `fail_on`, else 0."""
    @property
    def ok(self) -> bool:
        """Whether `exit_code` is 0."""
    def __bool__(self) -> bool: ...
    def to_json(self) -> str:
        """The report as JSON (the CLI's schema)."""
    def to_sarif(self) -> str:
        """The report as SARIF 2.1.0 JSON."""

def scan(
    path_or_paths: Union[str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]]],
    *,
    policy: str = "default",
    fail_on: str = "medium",
    allow_gguf: bool = False,
    allow_onnx: bool = False,
) -> ScanReport:
    """Scans files and folders for model files that can run code, by content, without
    executing anything. `policy` is `"default"` or `"safetensors-only"`; `fail_on` is
    `"info"`, `"low"`, `"medium"`, `"high"` or `"critical"`."""

class PySafeSlice:
    """A tensor not yet read."""
    def get_shape(self) -> List[int]:
        """The tensor's shape."""
    def get_dtype(self) -> str:
        """The tensor's format code."""
    def __getitem__(self, index: Any) -> Any:
        """Reads the selected part (ints, slices with steps, negative indices, `...`)."""
    def __len__(self) -> int: ...

class safe_open:
    """Opens a safetensors file lazily and returns tensors as asked."""
    def __init__(
        self,
        filename: Union[str, "os.PathLike[str]"],
        framework: str,
        device: Union[str, int] = "cpu",
        *,
        backend: str = "mmap",
        strict: bool = True,
    ) -> None: ...
    def __enter__(self) -> "safe_open":
        """Start the context manager."""
    def __exit__(self, _exc_type: Any, _exc_value: Any, _traceback: Any) -> None:
        """Close the file."""
    def keys(self) -> List[str]:
        """Tensor names, sorted."""
    def offset_keys(self) -> List[str]:
        """Tensor names in file order."""
    def metadata(self) -> Optional[Dict[str, str]]:
        """The `__metadata__` map, or None."""
    def get_tensor(self, name: str) -> Any:
        """A full tensor."""
    def get_tensors(self) -> Dict[str, Any]:
        """Every tensor, in file order."""
    def get_slice(self, name: str) -> PySafeSlice:
        """A lazy slice object."""

def _safe_open_handle(
    handle: Any, framework: str, device: Union[str, int] = "cpu", *, backend: str = "mmap", strict: bool = True
) -> safe_open:
    """Opens a safetensors file from an open Python file object."""

def install_as_safetensors() -> Any:
    """Registers safeweights as `safetensors`, `safetensors.torch`, ... in sys.modules."""
