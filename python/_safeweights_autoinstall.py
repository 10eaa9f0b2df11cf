"""Run at interpreter start by ``safeweights_as_safetensors.pth`` (a top-level
module, so that importing it does not import the package): when
``SAFEWEIGHTS_AS_SAFETENSORS=1`` is set, ``import safetensors`` gives
safeweights, with no change to the program (``vllm serve``, ``accelerate
launch``, ...). Without the variable it does nothing and imports nothing."""

import os


def _install_if_asked() -> None:
    value = os.environ.get("SAFEWEIGHTS_AS_SAFETENSORS", "").strip().lower()
    if value not in ("1", "true", "yes", "on"):
        return
    try:
        import safeweights

        safeweights.install_as_safetensors()
    except Exception as error:  # noqa: BLE001 - never break interpreter start-up
        import sys

        print(f"safeweights: SAFEWEIGHTS_AS_SAFETENSORS is set but could not install: {error}", file=sys.stderr)


_install_if_asked()
