import os
from typing import Any, Dict, Iterable, Iterator, List, Optional, Set, Tuple, Union

import torch

__all__ = [
    "save",
    "save_file",
    "load",
    "load_file",
    "save_model",
    "load_model",
    "storage_ptr",
    "storage_size",
    "load_checkpoint",
    "iter_checkpoint",
    "release_pinned_memory",
]

def storage_ptr(tensor: torch.Tensor) -> int:
    """The address of the tensor's storage."""
def storage_size(tensor: torch.Tensor) -> int:
    """The size in bytes of the tensor's storage."""
def _find_shared_tensors(state_dict: Dict[str, torch.Tensor]) -> List[Set[str]]:
    """Groups of names sharing memory."""
def _remove_duplicate_names(
    state_dict: Dict[str, torch.Tensor],
    *,
    preferred_names: Optional[List[str]] = None,
    discard_names: Optional[List[str]] = None,
) -> Dict[str, List[str]]:
    """For each shared group, the name kept and the aliases dropped."""
def _flatten(tensors: Dict[str, torch.Tensor]) -> Dict[str, Dict[str, Any]]:
    """The older `{name: {dtype, shape, data}}` form."""
def save_model(
    model: torch.nn.Module, filename: str, metadata: Optional[Dict[str, str]] = None, force_contiguous: bool = True
) -> None:
    """Saves a model, handling shared tensors."""
def load_model(
    model: torch.nn.Module,
    filename: Union[str, os.PathLike],
    strict: bool = True,
    device: Union[str, int] = "cpu",
    *,
    backend: str = "mmap",
) -> Tuple[List[str], List[str]]:
    """Loads a file into a model, restoring shared tensors."""
def save(tensors: Dict[str, torch.Tensor], metadata: Optional[Dict[str, str]] = None) -> bytes:
    """Serializes tensors to bytes."""
def save_file(
    tensors: Dict[str, torch.Tensor], filename: Union[str, os.PathLike], metadata: Optional[Dict[str, str]] = None
) -> None:
    """Writes tensors to a file, atomically."""
def load_file(
    filename: Union[str, os.PathLike], device: Union[str, int] = "cpu", *, backend: str = "mmap"
) -> Dict[str, torch.Tensor]:
    """Loads a file as torch tensors."""
def load(data: bytes) -> Dict[str, torch.Tensor]:
    """Loads bytes (or any buffer) as torch tensors."""
def load_checkpoint(
    path_or_dir_or_files: Union[str, os.PathLike, Iterable[Union[str, os.PathLike]]],
    device: Union[str, int] = "cpu",
    threads: Optional[int] = None,
    memory_budget: Optional[Union[int, str]] = None,
) -> Dict[str, torch.Tensor]:
    """Loads a whole (sharded) checkpoint with the parallel loader, straight into new tensors."""
def iter_checkpoint(
    path_or_dir_or_files: Union[str, os.PathLike, Iterable[Union[str, os.PathLike]]],
    device: Union[str, int] = "cpu",
    threads: Optional[int] = None,
    memory_budget: Optional[Union[int, str]] = None,
) -> Iterator[Tuple[str, torch.Tensor]]:
    """Yields `(name, tensor)` of a whole (sharded) checkpoint as each finishes loading."""
def release_pinned_memory() -> int:
    """Frees the pinned host buffers the CUDA loader keeps between loads; returns the bytes freed."""
