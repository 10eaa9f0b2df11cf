"""Registering safeweights under the ``safetensors`` module names."""

import importlib
import sys
import types
import warnings

#: The version of the reference ``safetensors`` package whose API and bytes
#: safeweights reproduces: what ``safetensors.__version__`` says once
#: installed (libraries compare it to pick code paths).
REFERENCE_VERSION = "0.8.0"

_SUBMODULES = ("torch", "numpy", "flax", "tensorflow", "mlx", "paddle")


class _LazySubmodules:
    """Import hook that serves ``safetensors.X`` from ``safeweights.X``."""

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith("safetensors."):
            return None
        sub = fullname.split(".", 1)[1]
        if sub not in _SUBMODULES:
            return None
        import importlib.util

        return importlib.util.spec_from_loader(fullname, _AliasLoader("safeweights." + sub))


class _AliasLoader:
    def __init__(self, target):
        self.target = target

    def create_module(self, spec):
        return importlib.import_module(self.target)

    def exec_module(self, module):
        pass


_finder = _LazySubmodules()


def _facade(pkg):
    """A module named ``safetensors`` that holds safeweights' objects (the same
    functions and classes) but reports the reference's ``__version__``."""
    mod = types.ModuleType("safetensors", pkg.__doc__)
    for name, value in vars(pkg).items():
        if not name.startswith("__") or name == "__all__":
            setattr(mod, name, value)
    mod.__version__ = REFERENCE_VERSION
    mod.__safeweights_version__ = pkg.__version__
    # A package, so that ``import safetensors.torch`` is looked up (by the
    # finder above) rather than refused.
    mod.__path__ = []
    mod.__file__ = pkg.__file__

    def __getattr__(name):
        if name in _SUBMODULES:
            return importlib.import_module("safetensors." + name)
        raise AttributeError(f"module 'safetensors' has no attribute {name!r}")

    mod.__getattr__ = __getattr__
    return mod


def install_as_safetensors():
    """Make ``import safetensors`` (and ``safetensors.torch`` etc.) load safeweights.

    Registers this package under the module name ``safetensors`` in
    ``sys.modules``, and its framework modules under ``safetensors.torch``,
    ``safetensors.numpy``, ... (framework modules are imported lazily, on first
    import, so a missing framework costs nothing until used). Call it before the
    library that imports ``safetensors`` does; an already-imported reference
    ``safetensors`` is replaced, but modules that already hold references to its
    functions keep them.

    ``safetensors.__version__`` then reports the reference version whose API
    this package reproduces (``REFERENCE_VERSION``); ``safeweights.__version__``
    keeps its own. Libraries that read the installed distribution's metadata
    (``importlib.metadata.version("safetensors")``) still need the reference
    package installed beside this one.

    Returns:
        The ``safeweights`` module.
    """
    pkg = sys.modules["safeweights"]
    current = sys.modules.get("safetensors")
    if current is not None and getattr(current, "__safeweights_version__", None) is None:
        warnings.warn(
            "safeweights.install_as_safetensors(): the reference safetensors was already "
            "imported; modules that imported it before this call keep using it. Call "
            "install_as_safetensors() first, or set SAFEWEIGHTS_AS_SAFETENSORS=1.",
            stacklevel=2,
        )
    for name in list(sys.modules):
        if name == "safetensors" or name.startswith("safetensors."):
            del sys.modules[name]
    sys.modules["safetensors"] = _facade(pkg)
    for sub in _SUBMODULES:
        loaded = sys.modules.get("safeweights." + sub)
        if loaded is not None:
            sys.modules["safetensors." + sub] = loaded
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
    return pkg
