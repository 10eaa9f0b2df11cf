"""Registering safeweights under the ``safetensors`` module names."""

import importlib
import sys

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


def install_as_safetensors():
    """Make ``import safetensors`` (and ``safetensors.torch`` etc.) load safeweights.

    Registers this package under the module name ``safetensors`` in
    ``sys.modules``, and its framework modules under ``safetensors.torch``,
    ``safetensors.numpy``, ... (framework modules are imported lazily, on first
    import, so a missing framework costs nothing until used). Call it before the
    library that imports ``safetensors`` does; an already-imported reference
    ``safetensors`` is replaced, but modules that already hold references to its
    functions keep them.

    Returns:
        The ``safeweights`` module.
    """
    pkg = sys.modules["safeweights"]
    for name in list(sys.modules):
        if name == "safetensors" or name.startswith("safetensors."):
            del sys.modules[name]
    sys.modules["safetensors"] = pkg
    for sub in _SUBMODULES:
        loaded = sys.modules.get("safeweights." + sub)
        if loaded is not None:
            sys.modules["safetensors." + sub] = loaded
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
    return pkg
