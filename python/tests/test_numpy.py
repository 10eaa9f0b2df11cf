import numpy as np
import pytest

import safetensors.numpy as ref
import safeweights
import safeweights.numpy as sw

DTYPES = [np.float64, np.float32, np.float16, np.int64, np.uint64, np.int32, np.uint32, np.int16,
          np.uint16, np.int8, np.uint8, np.bool_, np.complex64]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_roundtrip_and_bytes(dtype, tmp_file):
    arrays = {"x": (np.arange(12) % 7).astype(dtype).reshape(3, 4), "s": np.array(1, dtype=dtype),
              "e": np.zeros((0, 3), dtype=dtype)}
    data = sw.save(arrays, metadata={"m": "1"})
    assert data == ref.save(arrays, metadata={"m": "1"})
    for loaded in (sw.load(data), ref.load(data)):
        for k, v in arrays.items():
            assert loaded[k].dtype == v.dtype and np.array_equal(loaded[k], v)
    sw.save_file(arrays, tmp_file)
    for backend in ("mmap", "pread"):
        got = sw.load_file(tmp_file, backend=backend)
        for k, v in arrays.items():
            assert np.array_equal(got[k], v) and got[k].shape == v.shape
    assert set(ref.load_file(tmp_file)) == set(arrays)


def test_big_endian_input():
    a = np.arange(3, dtype=">i4")
    assert sw.save({"a": a}) == ref.save({"a": a})
    assert sw.load(sw.save({"a": a}))["a"].tolist() == [0, 1, 2]


def test_noncontiguous_input_is_packed():
    a = np.arange(12, dtype=np.float32).reshape(3, 4).T
    assert np.array_equal(sw.load(sw.save({"a": a}))["a"], a)


def test_numpy_slices(tmp_file):
    a = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    sw.save_file({"a": a}, tmp_file)
    with safeweights.safe_open(tmp_file, "np") as f:
        s = f.get_slice("a")
        assert np.array_equal(s[1:, ::2, -1], a[1:, ::2, -1])
        assert np.array_equal(s[..., ::-2], a[..., ::-2])
        got = f.get_tensor("a")
        got[0, 0, 0] = 99  # writable copy
    assert sw.load_file(tmp_file)["a"][0, 0, 0] == 0


def test_bf16_needs_ml_dtypes(tmp_file):
    import torch
    import safeweights.torch as swt

    swt.save_file({"a": torch.zeros(2, dtype=torch.bfloat16)}, tmp_file)
    try:
        import ml_dtypes  # noqa: F401
    except ImportError:
        with pytest.raises(TypeError, match="data type 'bfloat16' not understood"):
            sw.load_file(tmp_file)


@pytest.mark.parametrize("module", ["flax", "tensorflow", "mlx", "paddle"])
def test_other_frameworks_lazy(module, tmp_file):
    import importlib

    try:
        mod = importlib.import_module("safeweights." + module)
    except ImportError as e:
        assert "needs" in str(e) and "pip install" in str(e)
        return
    sw.save_file({"a": np.ones(3, np.float32)}, tmp_file)
    data = mod.load_file(tmp_file)
    assert np.array_equal(np.asarray(data["a"]), np.ones(3, np.float32))
    assert mod.load(mod.save(data)).keys() == {"a"}
