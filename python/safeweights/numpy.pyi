import os
from typing import Any, Dict, Optional, Union

__all__ = ["save", "save_file", "load", "load_file"]

def save(tensor_dict: Dict[str, Any], metadata: Optional[Dict[str, str]] = None) -> bytes:
    """Serializes tensors to bytes."""
def save_file(tensor_dict: Dict[str, Any], filename: Union[str, os.PathLike], metadata: Optional[Dict[str, str]] = None) -> None:
    """Writes tensors to a file, atomically."""
def load(data: bytes) -> Dict[str, Any]:
    """Loads bytes as tensors."""
def load_file(filename: Union[str, os.PathLike], *, backend: str = "mmap") -> Dict[str, Any]:
    """Loads a file as tensors."""
