"""Turning tensor bytes into framework tensors (torch, numpy, tensorflow,
flax/jax, mlx, paddle). Frameworks are imported lazily."""

import importlib
import sys

from ._safeweights import SafetensorError

_BIG_ENDIAN = sys.byteorder == "big"

# Format code -> torch dtype attribute name.
TORCH_DTYPES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "U16": "uint16",
    "U32": "uint32",
    "U64": "uint64",
    "BOOL": "bool",
    "C64": "complex64",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E4M3FNUZ": "float8_e4m3fnuz",
    "F8_E5M2": "float8_e5m2",
    "F8_E5M2FNUZ": "float8_e5m2fnuz",
    "F8_E8M0": "float8_e8m0fnu",
    "F4": "float4_e2m1fn_x2",
}

# Format code -> numpy dtype name (names past BOOL need ml_dtypes registered).
NUMPY_DTYPES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "I64": "int64",
    "U64": "uint64",
    "I32": "int32",
    "U32": "uint32",
    "I16": "int16",
    "U16": "uint16",
    "I8": "int8",
    "U8": "uint8",
    "BOOL": "bool",
    "C64": "complex64",
    "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E4M3FNUZ": "float8_e4m3fnuz",
    "F8_E5M2": "float8_e5m2",
    "F8_E5M2FNUZ": "float8_e5m2fnuz",
    "F8_E8M0": "float8_e8m0fnu",
}

_FRAMEWORK_MODULES = {
    "pt": "torch",
    "np": "numpy",
    "tf": "tensorflow",
    "flax": "jax.numpy",
    "mlx": "mlx.core",
    "paddle": "paddle",
}

_modules = {}


def require(framework):
    """Imports a framework's module, with a clear message when it is missing."""
    mod = _modules.get(framework)
    if mod is None:
        name = _FRAMEWORK_MODULES[framework]
        try:
            mod = importlib.import_module(name)
        except ImportError as e:
            raise ImportError(
                f"safeweights: framework {framework!r} needs the {name.split('.')[0]!r} package, "
                f"which could not be imported ({e}). Install it, or open the file with another framework."
            ) from e
        _modules[framework] = mod
    return mod


def torch_dtype(code):
    torch = require("pt")
    attr = TORCH_DTYPES.get(code)
    dtype = getattr(torch, attr, None) if attr else None
    if dtype is None:
        raise SafetensorError(f"dtype {code} is not supported by this version of torch")
    return dtype


def torch_shape(code, shape):
    """torch's shape for a header shape: F4 packs two elements per byte."""
    if code == "F4":
        shape = list(shape)
        if not shape or shape[-1] % 2:
            raise SafetensorError(f"F4 tensor of shape {shape} cannot be viewed as float4_e2m1fn_x2")
        shape[-1] //= 2
    return shape


def numpy_dtype(code):
    np = require("np")
    name = NUMPY_DTYPES.get(code, code)
    try:
        return np.dtype(name)
    except TypeError:
        raise TypeError(f"data type '{name}' not understood") from None


def _torch_byteswap(t):
    np = require("np")
    torch = require("pt")
    if t.element_size() == 1:
        return t
    arr = t.view(getattr(torch, f"int{8 * t.element_size()}")).numpy().byteswap(inplace=False)
    return torch.from_numpy(arr).view(t.dtype)


def _torch_from_u8(u8, code, shape):
    """Views a uint8 tensor as the tensor it holds."""
    torch = require("pt")
    dtype = torch_dtype(code)
    shape = torch_shape(code, shape)
    if dtype is not torch.uint8:
        u8 = u8.view(dtype)
    t = u8.reshape(shape)
    if _BIG_ENDIAN:
        t = _torch_byteswap(t)
    return t


def _torch_mapped(owner, f, code, shape, start, stop):
    torch = require("pt")
    base = owner._storage
    if base is None:
        storage = torch.UntypedStorage.from_file(f.name, False, f.file_len())
        base = owner._storage = (storage, torch.asarray(storage, dtype=torch.uint8))
    storage, u8 = base
    itemsize = torch_dtype(code).itemsize
    if start % itemsize == 0:
        return _torch_from_u8(u8[start:stop], code, shape)
    # Misaligned in the file: a view of the bytes starting at offset 0.
    return _torch_from_u8(torch.asarray(storage[start:stop], dtype=torch.uint8), code, shape)


def build(owner, f, entry):
    """A whole tensor of an open file, in the owner's framework and device."""
    name, code, shape, start, stop = entry
    fw = owner._framework
    if fw == "pt":
        torch = require("pt")
        if start == stop:
            t = torch.empty(torch_shape(code, shape), dtype=torch_dtype(code))
        elif owner._backend == "mmap" and f.is_mapped() and f.name != "<memory>":
            t = _torch_mapped(owner, f, code, shape, start, stop)
        else:
            u8 = torch.empty(stop - start, dtype=torch.uint8)
            f.read_into(name, u8.data_ptr(), stop - start)
            t = _torch_from_u8(u8, code, shape)
        return _to_device(owner, t)
    return from_bytes(owner, code, shape, f.read_bytearray(name))


def _to_device(owner, t):
    if owner._device != "cpu":
        t = t.to(owner._device)
    return t


def from_bytes(owner, code, shape, data):
    """A tensor from freshly read, writable bytes (a ``bytearray``)."""
    fw = owner._framework
    if fw == "pt":
        torch = require("pt")
        if len(data) == 0:
            t = torch.empty(torch_shape(code, shape), dtype=torch_dtype(code))
        else:
            t = _torch_from_u8(torch.frombuffer(data, dtype=torch.uint8), code, shape)
        return _to_device(owner, t)
    np = require("np")
    arr = np.frombuffer(data, dtype=numpy_dtype(code)).reshape(shape)
    if _BIG_ENDIAN:
        arr = arr.byteswap(inplace=False)
    return convert_numpy(fw, arr, owner._device)


def convert_numpy(fw, arr, device="cpu"):
    """A numpy array as a tensor of another framework."""
    if fw == "np":
        return arr
    mod = require(fw)
    if fw == "tf":
        return mod.convert_to_tensor(arr)
    if fw == "flax":
        return mod.array(arr)
    if fw == "mlx":
        return mod.array(arr)
    if fw == "paddle":
        return mod.to_tensor(arr, place=device)
    raise SafetensorError(f"framework {fw} is invalid")
