"""The Python binding of the CUDA loader (``_Plan.load_cuda``) on a machine
without a GPU, against the emulated CUDA runtime of the load crate's tests
(crates/safeweights-load/tests/cudart_emu: streams run copies asynchronously
and every misuse is counted). Device memory is allocated and read back
through the emulator with ctypes; the bytes are compared with the reference
``safetensors`` package's."""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EMULATOR = os.path.join(ROOT, "crates", "safeweights-load", "tests", "cudart_emu", "cudart_emu.c")

SCRIPT = r"""
import ctypes, sys
import numpy as np
import safetensors
import safeweights
from safeweights._safeweights import _Plan, _cuda_status

path, lib_path = sys.argv[1], sys.argv[2]
emu = ctypes.CDLL(lib_path)
emu.cudaMalloc.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t]
emu.cudaMemcpy.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
emu.cudaFree.argtypes = [ctypes.c_void_p]
emu.emu_reset(1, 50, 0, 0, ctypes.c_size_t(0))

ok, detail = _cuda_status()
assert ok and detail == lib_path, (ok, detail)

plan = _Plan.open([path])
entries = plan.entries()
ptrs = []
for _, _, _, n in entries:
    p = ctypes.c_void_p()
    assert emu.cudaMalloc(ctypes.byref(p), max(n, 1)) == 0
    ptrs.append(p.value)
report = plan.load_cuda(0, ptrs, threads=4, memory_budget=1 << 20)
assert report["device"] == "cuda:0" and report["tensors"] == len(entries), report

with safetensors.safe_open(path, "numpy") as f:
    for (name, _, _, n), p in zip(entries, ptrs):
        host = ctypes.create_string_buffer(max(n, 1))
        assert emu.cudaMemcpy(host, p, n, 2) == 0
        assert host.raw[:n] == f.get_tensor(name).tobytes(), name

# Host memory is not device memory: the emulator refuses the copy, and the
# error names the file and the tensor.
host = ctypes.create_string_buffer(entries[0][3])
try:
    plan.load_cuda(0, [ctypes.addressof(host)] + ptrs[1:])
    raise SystemExit("a host pointer was accepted as device memory")
except safeweights.SafetensorError as e:
    assert "cudaMemcpyAsync" in str(e) and entries[0][0] in str(e), str(e)

try:
    plan.load_cuda(0, [ptrs[0]] * len(ptrs))
    raise SystemExit("overlapping destinations were accepted")
except safeweights.SafetensorError as e:
    assert "overlap" in str(e), str(e)

# The ring's pinned buffers are kept for the next load until released.
import safeweights.torch as sw
kept = sw.release_pinned_memory()
assert kept > 0 and sw.release_pinned_memory() == 0, kept

for p in ptrs:
    assert emu.cudaFree(p) == 0
print("OK")
"""


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    if not os.path.exists(EMULATOR):
        pytest.skip("the emulator's source is in the repository, not in this install")
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler to build the emulated CUDA runtime")
    out = str(tmp_path_factory.mktemp("emu") / "libcudart_emu.so")
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-pthread", "-o", out, EMULATOR], check=True)
    return out


def test_load_cuda_binding_against_an_emulated_runtime(tmp_path, emulator):
    np = pytest.importorskip("numpy")
    from safetensors.numpy import save_file

    rng = np.random.default_rng(5)
    tensors = {f"t{i}": rng.integers(0, 255, size=(i % 7 + 1, 33), dtype=np.uint8).view(np.uint8)
               for i in range(300)}
    tensors["big"] = rng.standard_normal((700, 513)).astype(np.float32)
    tensors["half"] = rng.standard_normal((5, 3)).astype(np.float16)
    path = str(tmp_path / "m.safetensors")
    save_file(tensors, path)  # written by the reference package
    env = dict(os.environ, SAFEWEIGHTS_CUDART=emulator)
    run = subprocess.run([sys.executable, "-c", SCRIPT, path, emulator], env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip().endswith("OK"), run.stdout + run.stderr
