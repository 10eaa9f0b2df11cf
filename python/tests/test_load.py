"""safeweights.torch.load_checkpoint / iter_checkpoint (the parallel loader)
and the CUDA dispatch of safe_open / load_file (fallback path: no GPU here)."""

import json
import os
import threading

import pytest
import torch

import safeweights
import safeweights.torch as sw
from safeweights import SafetensorError, _loader
from safeweights._safeweights import _Plan

DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.int64, torch.int8, torch.bool,
          torch.uint8, torch.float64, torch.complex64, torch.float8_e4m3fn]


def tensor(i, dtype, shape):
    raw = torch.randint(0, 120, (max(1, int(torch.tensor(shape).prod().item())) * 8,), dtype=torch.uint8)
    if dtype == torch.bool:
        return (raw[: torch.Size(shape).numel()] % 2 == 0).reshape(shape)
    size = torch.empty(0, dtype=dtype).element_size()
    n = torch.Size(shape).numel()
    return raw[: n * size].view(dtype).reshape(shape).clone()


def write_sharded(folder, shards=3, per_shard=5):
    """Shards written by safeweights.torch.save_file, plus the index."""
    os.makedirs(folder, exist_ok=True)
    weight_map, expected, total = {}, {}, 0
    k = 0
    for s in range(shards):
        part = {}
        for j in range(per_shard):
            dtype = DTYPES[k % len(DTYPES)]
            shape = [(3, 5), (7,), (), (0, 4), (33, 17)][j % 5]
            part[f"layer.{k}.w"] = tensor(k, dtype, shape)
            k += 1
        name = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        sw.save_file(part, os.path.join(folder, name), metadata={"format": "pt"})
        for n, t in part.items():
            weight_map[n] = name
            total += t.numel() * t.element_size()
        expected.update(part)
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as fh:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, fh)
    return expected


def raw(t):
    return bytes(t.contiguous().reshape(-1).view(torch.uint8).numpy())


def same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, b.dtype, a.shape, b.shape)
    assert raw(a) == raw(b)


@pytest.fixture
def sharded(tmp_path):
    folder = tmp_path / "ckpt"
    return str(folder), write_sharded(str(folder))


def per_shard(folder):
    out = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".safetensors"):
            out.update(sw.load_file(os.path.join(folder, name)))
    return out


@pytest.mark.parametrize("how", ["folder", "index", "files", "pathlike"])
def test_load_checkpoint_equals_load_file_per_shard(sharded, how):
    folder, expected = sharded
    shards = sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".safetensors"))
    arg = {
        "folder": folder,
        "index": os.path.join(folder, "model.safetensors.index.json"),
        "files": shards,
        "pathlike": __import__("pathlib").Path(folder),
    }[how]
    loaded = sw.load_checkpoint(arg)
    reference = per_shard(folder)
    assert list(loaded) == list(reference)  # shard by shard, file order
    for name, t in loaded.items():
        same(t, reference[name])
        same(t, expected[name])
        assert t.device.type == "cpu"
    # The tensors own their memory: writable and independent of each other.
    ptrs = {sw.storage_ptr(t) for t in loaded.values() if t.numel()}
    assert len(ptrs) == sum(1 for t in loaded.values() if t.numel())
    big = loaded["layer.4.w"]
    big.view(torch.uint8).fill_(0)
    same(loaded["layer.9.w"], expected["layer.9.w"])


def test_load_checkpoint_single_file_and_options(tmp_path):
    path = str(tmp_path / "one.safetensors")
    data = {"a": torch.randn(1000, 33), "b": torch.arange(7), "c": torch.randn(0, 3)}
    sw.save_file(data, path)
    for threads, budget in [(None, None), (1, None), (3, 4096), (8, "64KB"), (2, "1MiB")]:
        loaded = sw.load_checkpoint(path, threads=threads, memory_budget=budget)
        assert set(loaded) == set(data)
        for k, v in data.items():
            same(loaded[k], v)
    with pytest.raises(ValueError):
        sw.load_checkpoint(path, threads=0)
    with pytest.raises(ValueError):
        sw.load_checkpoint(path, memory_budget="lots")


def test_load_checkpoint_errors(tmp_path, sharded):
    folder, _ = sharded
    with pytest.raises(FileNotFoundError):
        sw.load_checkpoint(tmp_path / "missing.safetensors")
    with pytest.raises(ValueError):
        sw.load_checkpoint([])
    shard = os.path.join(folder, sorted(n for n in os.listdir(folder) if n.endswith(".safetensors"))[0])
    with pytest.raises(SafetensorError, match="earlier file"):
        sw.load_checkpoint([shard, shard])
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(open(shard, "rb").read()[:-10])
    with pytest.raises(SafetensorError) as e:
        sw.load_checkpoint(bad)
    assert e.value.file == str(bad)


def test_plan_refuses_overlapping_destinations(tmp_path):
    path = str(tmp_path / "x.safetensors")
    sw.save_file({"a": torch.ones(16), "b": torch.ones(16)}, path)
    plan = _Plan.open([path])
    assert len(plan) == 2 and plan.total_bytes() == 128
    buf = torch.empty(64, dtype=torch.uint8)
    with pytest.raises(SafetensorError, match="overlap"):
        plan.load_cpu([buf.data_ptr(), buf.data_ptr()])
    with pytest.raises(SafetensorError):
        plan.load_cpu([buf.data_ptr()])
    with pytest.raises(SafetensorError):
        plan.load_cpu([0, buf.data_ptr()])
    buf2 = torch.empty(128, dtype=torch.uint8)
    report = plan.load_cpu([buf2.data_ptr(), buf2.data_ptr() + 64])
    assert report["tensors"] == 2 and report["bytes"] == 128 and report["device"] == "cpu"
    assert torch.equal(buf2.view(torch.float32), torch.ones(32))


def test_iter_checkpoint_yields_every_tensor_once(sharded):
    folder, expected = sharded
    seen = []
    for name, t in sw.iter_checkpoint(folder, threads=4, memory_budget="64KB"):
        seen.append(name)
        same(t, expected[name])
    assert sorted(seen) == sorted(expected) and len(seen) == len(set(seen))


def test_iter_checkpoint_abandoned_early(sharded):
    folder, expected = sharded
    it = sw.iter_checkpoint(folder)
    name, t = next(it)
    same(t, expected[name])
    del it  # the background load finishes on its own buffers


def test_load_checkpoint_from_many_threads(sharded):
    folder, expected = sharded
    errors, results = [], []

    def work():
        try:
            for _ in range(5):
                results.append(sw.load_checkpoint(folder, threads=2))
                results.append(dict(sw.iter_checkpoint(folder, threads=2)))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    assert len(results) == 80
    for r in results:
        assert set(r) == set(expected)
        for k, v in r.items():
            same(v, expected[k])


def test_cuda_status_reported():
    ok, detail = safeweights._safeweights._cuda_status()
    assert isinstance(ok, bool) and isinstance(detail, str) and detail
    if not torch.cuda.is_available():
        assert _loader.engine_cuda_index("cuda:0") is None
    assert _loader.engine_cuda_index("cpu") is None


@pytest.fixture
def moves(monkeypatch):
    """Without a GPU: force the fallback, and record `.to(device)` moves
    instead of doing them."""
    monkeypatch.setattr(_loader, "_CUDA", False)
    calls = []
    original = torch.Tensor.to

    def fake_to(self, *args, **kwargs):
        dev = args[0] if args else kwargs.get("device")
        if isinstance(dev, (str, torch.device)) and str(dev).startswith("cuda"):
            calls.append(str(dev))
            return self
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", fake_to)
    return calls


def test_cuda_fallback_load_file_and_safe_open(tmp_file, moves):
    data = {"a": torch.randn(4, 4), "b": torch.arange(3)}
    sw.save_file(data, tmp_file)
    loaded = sw.load_file(tmp_file, device="cuda:1")
    assert moves == ["cuda:1", "cuda:1"]
    for k, v in data.items():
        same(loaded[k], v)
    with safeweights.safe_open(tmp_file, "pt", device=0) as f:
        same(f.get_tensor("a"), data["a"])
    assert moves[-1] == "cuda:0"


def test_cuda_fallback_load_checkpoint(sharded, moves):
    folder, expected = sharded
    loaded = sw.load_checkpoint(folder, device="cuda:0")
    assert len(moves) == len(expected) and set(moves) == {"cuda:0"}
    for k, v in loaded.items():
        same(v, expected[k])
    moves.clear()
    got = dict(sw.iter_checkpoint(folder, device="cuda"))
    assert set(got) == set(expected) and set(moves) == {"cuda"}


def test_other_devices_load_on_cpu_then_move(sharded):
    folder, expected = sharded
    loaded = sw.load_checkpoint(folder, device="meta")
    for k, v in loaded.items():
        assert v.device.type == "meta" and v.shape == expected[k].shape and v.dtype == expected[k].dtype
    with pytest.raises(SafetensorError):
        sw.load_checkpoint(folder, device="quantum")


def test_read_error_names_file_and_tensor(tmp_path):
    path = str(tmp_path / "t.safetensors")
    sw.save_file({"a": torch.ones(1024), "b": torch.ones(1024)}, path)
    plan = _loader.open_plan(path)
    size = os.path.getsize(path)
    with open(path, "r+b") as fh:  # truncated after planning
        fh.truncate(size - 100)
    with pytest.raises(safeweights.SafetensorIOError) as e:
        _loader.load_plan(plan)
    assert e.value.file == path and e.value.tensor == "b"
    got = []
    with pytest.raises(safeweights.SafetensorIOError) as e:
        for name, t in _loader.iter_plan(plan, threads=1):
            got.append(name)
            assert torch.equal(t, torch.ones(1024))
    assert e.value.tensor == "b" and got in ([], ["a"])
