"""safeweights.diff and safeweights.merge on checkpoints written by the
reference ``safetensors`` package and torch, judged against torch's own
arithmetic on the same tensors."""

import json
import os

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file as ref_load_file
from safetensors.torch import save_file as ref_save_file

import safeweights
from safeweights import SafetensorError


DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16", torch.int64: "I64"}


def tensors(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "embed.weight": torch.randn(64, 32, generator=g),
        "layer.0.q.weight": torch.randn(32, 32, generator=g).to(torch.bfloat16),
        "layer.0.up.weight": torch.randn(48, 32, generator=g).to(torch.float16),
        "layer.0.norm": torch.ones(32),
        "position_ids": torch.arange(128, dtype=torch.int64).reshape(1, 128),
        "mask": torch.tensor([True, False, True]),
    }


def write(path, ts, metadata=None):
    ref_save_file(ts, str(path), metadata=metadata if metadata is not None else {"format": "pt"})
    return str(path)


def shard(folder, ts, groups):
    """Writes `ts` as shards named like transformers does, with an index."""
    os.makedirs(folder, exist_ok=True)
    weight_map = {}
    total = 0
    for i, names in enumerate(groups):
        name = f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        part = {n: ts[n] for n in names}
        ref_save_file(part, os.path.join(folder, name), metadata={"format": "pt"})
        for n, t in part.items():
            weight_map[n] = name
            total += t.numel() * t.element_size()
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f)
    return str(folder)


def test_diff_equal(tmp_path):
    ts = tensors()
    a = write(tmp_path / "a.safetensors", ts)
    b = write(tmp_path / "b.safetensors", {k: v.clone() for k, v in ts.items()})
    r = safeweights.diff(a, b)
    assert r["equal"] is True
    assert r["a"] == a and r["b"] == b
    assert r["compared"] == len(ts) == r["identical"]
    assert r["changed"] == [] and r["only_in_a"] == [] and r["only_in_b"] == []
    assert r["metadata"] == {"equal": True, "a": {"format": "pt"}, "b": {"format": "pt"}}


def test_diff_values_match_torch(tmp_path):
    ts = tensors()
    other = {k: v.clone() for k, v in ts.items()}
    # Change some floats, one to infinity, and one integer.
    other["embed.weight"][3, :5] += 0.25
    other["embed.weight"][7, 1] = float("inf")
    other["layer.0.q.weight"][0, 0] = -other["layer.0.q.weight"][0, 0] * 3
    other["position_ids"][0, 10] = 999
    a = write(tmp_path / "a.safetensors", ts)
    b = write(tmp_path / "b.safetensors", other)
    r = safeweights.diff(a, b)
    assert r["equal"] is False
    changed = {c["name"]: c for c in r["changed"]}
    assert sorted(changed) == ["embed.weight", "layer.0.q.weight", "position_ids"]
    assert r["identical"] == len(ts) - 3

    # The oracle: torch on the tensors the reference reads back.
    ra, rb = ref_load_file(a), ref_load_file(b)
    for name, c in changed.items():
        x, y = ra[name].double(), rb[name].double()
        differ = (x != y) & ~(x.isnan() & y.isnan())
        assert c["change"] == "values"
        assert c["differing_values"] == int(differ.sum())
        assert c["dtype"] == [DTYPES[ra[name].dtype]] * 2
        assert c["shape"] == [list(ra[name].shape)] * 2
        if ra[name].dtype.is_floating_point:
            finite = differ & x.isfinite() & y.isfinite()
            assert c["max_abs_diff"] == pytest.approx(float((x - y)[finite].abs().max()))
            assert c["nonfinite_mismatches"] == int((differ & ~finite).sum())
        else:
            assert c["max_abs_diff"] is None and c["nonfinite_mismatches"] is None
    assert changed["embed.weight"]["nonfinite_mismatches"] == 1
    assert changed["layer.0.q.weight"]["dtype"] == ["BF16", "BF16"]


def test_diff_names_dtypes_shapes_metadata(tmp_path):
    ts = tensors()
    other = {k: v.clone() for k, v in ts.items()}
    del other["mask"]
    other["extra"] = torch.zeros(2)
    other["layer.0.norm"] = ts["layer.0.norm"].to(torch.float16)
    other["embed.weight"] = ts["embed.weight"].reshape(32, 64).contiguous()
    other["layer.0.up.weight"] = torch.zeros(4, dtype=torch.int32)
    a = write(tmp_path / "a.safetensors", ts)
    b = write(tmp_path / "b.safetensors", other, metadata={"format": "np"})
    r = safeweights.diff(a, b)
    assert r["only_in_a"] == ["mask"] and r["only_in_b"] == ["extra"]
    kinds = {c["name"]: c["change"] for c in r["changed"]}
    assert kinds == {
        "embed.weight": "shape",
        "layer.0.norm": "dtype",
        "layer.0.up.weight": "dtype_and_shape",
    }
    up = next(c for c in r["changed"] if c["name"] == "layer.0.up.weight")
    assert up["dtype"] == ["F16", "I32"] and up["shape"] == [[48, 32], [4]]
    assert up["differing_values"] is None
    assert r["metadata"] == {"equal": False, "a": {"format": "pt"}, "b": {"format": "np"}}


def test_diff_sharded_against_file(tmp_path):
    ts = tensors()
    a = write(tmp_path / "a.safetensors", ts)
    names = sorted(ts)
    folder = shard(tmp_path / "sharded", ts, [names[:2], names[2:4], names[4:]])
    assert safeweights.diff(a, folder)["equal"] is True
    index = os.path.join(folder, "model.safetensors.index.json")
    assert safeweights.diff(index, a)["equal"] is True


def test_diff_errors(tmp_path):
    a = write(tmp_path / "a.safetensors", tensors())
    with pytest.raises(FileNotFoundError):
        safeweights.diff(a, str(tmp_path / "missing.safetensors"))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(SafetensorError):
        safeweights.diff(str(bad), a)


def test_merge(tmp_path):
    ts = tensors()
    names = sorted(ts)
    folder = shard(tmp_path / "sharded", ts, [names[:3], names[3:]])
    out = str(tmp_path / "merged.safetensors")
    r = safeweights.merge(folder, out)
    assert r == {
        "source": folder,
        "output": out,
        "shards": 2,
        "tensors": len(ts),
        "total_size": sum(t.numel() * t.element_size() for t in ts.values()),
        "file_bytes": os.path.getsize(out),
    }
    # The reference reads the merged file back, tensor for tensor.
    back = ref_load_file(out)
    assert sorted(back) == names
    for n in names:
        assert back[n].dtype == ts[n].dtype and torch.equal(back[n], ts[n])
    with safe_open(out, "pt") as f:
        assert f.metadata() == {"format": "pt"}
    assert safeweights.diff(folder, out)["equal"] is True
    # The layout is deterministic: merging the merged file gives the same bytes.
    again = str(tmp_path / "again.safetensors")
    safeweights.merge(out, again)
    with open(out, "rb") as f1, open(again, "rb") as f2:
        assert f1.read() == f2.read()


def test_merge_refuses(tmp_path):
    ts = tensors()
    src = write(tmp_path / "a.safetensors", ts)
    out = tmp_path / "out.safetensors"
    out.write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        safeweights.merge(src, str(out))
    assert out.read_bytes() == b"keep"
    safeweights.merge(src, str(out), overwrite=True)
    assert torch.equal(ref_load_file(str(out))["embed.weight"], ts["embed.weight"])
    with pytest.raises(IsADirectoryError):
        safeweights.merge(src, str(tmp_path))
    with pytest.raises(FileNotFoundError):
        safeweights.merge(str(tmp_path / "missing"), str(tmp_path / "x.safetensors"))
