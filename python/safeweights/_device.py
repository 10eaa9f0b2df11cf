"""Device arguments (``device=``) normalised to strings such as ``"cpu"`` or
``"cuda:1"``. The strings and integers are parsed by the native module, by
the same parser as the ``safeweights load --device`` command line; here only
what is Python-specific: ``None`` and ``torch.device`` objects."""

from ._safeweights import _parse_device as _parse_native


def _parse_device(device):
    """Normalise a device argument to a string like ``"cpu"`` or ``"cuda:1"``.

    ``None`` is the CPU, an integer ``N`` is ``"cuda:N"``, a string is a device
    kind (``cpu``, ``cuda``, ``mps``, ...) optionally followed by ``:N``.
    Raises ``SafetensorError`` for what is no device and ``ValueError`` for a
    bad ordinal, as the reference does."""
    if device is None:
        return "cpu"
    if not isinstance(device, (str, int)) and type(device).__name__ == "device" and hasattr(device, "type"):
        # torch.device and the like
        return str(device)
    return _parse_native(device)
