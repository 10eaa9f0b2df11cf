"""safeweights.convert and safeweights.scan: real torch.save checkpoints,
hand-made malicious pickles (never loaded), policies and reports."""

import json
import os
import zipfile

import pytest
import torch

import safeweights
import safeweights.torch as sw
from safeweights import ConversionError, SafetensorError

# Protocol 2: posix.system("echo pwned"), built by hand; never unpickled.
EVIL_PICKLE = b"\x80\x02cposix\nsystem\nq\x00X\x0a\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03."
# Protocol 0: os.system("echo pwned").
EVIL_BARE = b"cos\nsystem\n(S'echo pwned'\ntR."


def evil_zip(path):
    """A zip laid out like torch.save's whose data.pkl calls posix.system."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", EVIL_PICKLE)
        zf.writestr("archive/version", "3\n")
    return str(path)


def flatten(obj, prefix=""):
    """Dotted names of the tensors of a nested dict, as the converter names them."""
    out = {}
    for k, v in obj.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, name + "."))
        elif isinstance(v, torch.Tensor):
            out[name] = v
    return out


def assert_same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert torch.equal(a, b)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_convert_real_checkpoint(tmp_path, zip_format):
    w = torch.randn(16, 8)
    ckpt = {
        "model": {
            "w": w,
            "tied": w,  # same storage: written once
            "inner": {"b": torch.arange(10, dtype=torch.int64), "h": torch.randn(3).half()},
        },
        "epoch": 3,
    }
    src = tmp_path / "model.pt"
    torch.save(ckpt, src, _use_new_zipfile_serialization=zip_format)
    dst = tmp_path / "model.safetensors"
    summary = safeweights.convert(src, dst, metadata_leaves=True)
    assert summary["source_format"] == ("torch-zip" if zip_format else "torch-legacy")
    assert summary["target_format"] == "safetensors"
    assert summary["verified"] is True
    assert summary["tensors"] == 3
    assert summary["dropped_aliases"] == [{"name": "model.w", "kept": "model.tied"}]
    assert summary["non_tensor_leaves"] == [{"name": "epoch", "value": 3}]
    assert summary["leaves_in_metadata"] is True
    assert [os.path.basename(p) for p in summary["files_written"]] == ["model.safetensors"]

    reference = flatten(torch.load(src, weights_only=True))
    loaded = sw.load_file(dst)
    assert set(loaded) == set(reference) - {"model.w"}
    for name, t in loaded.items():
        assert_same(t, reference[name])
    with safeweights.safe_open(dst, "pt") as f:
        meta = f.metadata()
    assert meta["model.w"] == "model.tied"  # the alias, as save_model records it
    assert json.loads(meta["non_tensor_leaves"]) in ({"epoch": 3}, [{"name": "epoch", "value": 3}])


def test_convert_keep_shared_and_shards(tmp_path):
    w = torch.randn(64, 64)
    src = tmp_path / "big.pt"
    torch.save({"a": w, "b": w, "c": torch.randn(64, 64)}, src)
    out = tmp_path / "out.safetensors"
    summary = safeweights.convert(src, out, keep_shared=True, max_shard_size="20KB")
    assert summary["dropped_aliases"] == []
    assert summary["tensors"] == 3
    names = sorted(os.path.basename(p) for p in summary["files_written"])
    assert "out.safetensors.index.json" in names and len(names) >= 3
    reference = torch.load(src, weights_only=True)
    loaded = sw.load_checkpoint(tmp_path / "out.safetensors.index.json")
    assert set(loaded) == {"a", "b", "c"}
    for k, v in loaded.items():
        assert_same(v, reference[k])
    # int sizes work too
    summary = safeweights.convert(src, tmp_path / "o2.safetensors", max_shard_size=20_000)
    assert len(summary["files_written"]) >= 3


def test_convert_errors(tmp_path):
    src = tmp_path / "m.pt"
    torch.save({"x": torch.ones(2)}, src)
    dst = tmp_path / "m.safetensors"
    safeweights.convert(src, dst)
    before = dst.read_bytes()
    with pytest.raises(ConversionError) as e:
        safeweights.convert(src, dst)
    assert e.value.kind == "destination_exists"
    assert e.value.file == str(dst)
    assert dst.read_bytes() == before
    safeweights.convert(src, dst, overwrite=True)
    with pytest.raises(ConversionError) as e:
        safeweights.convert(tmp_path / "missing.pt", tmp_path / "x.safetensors")
    assert e.value.kind == "io"
    for bad in ("5 parsecs", "", -1, 0, 1.5, True):
        with pytest.raises((ValueError, TypeError)):
            safeweights.convert(src, tmp_path / "y.safetensors", max_shard_size=bad)
    assert issubclass(ConversionError, SafetensorError)


@pytest.mark.parametrize("kind", ["zip", "bare"])
def test_convert_refuses_malicious_and_writes_nothing(tmp_path, kind):
    if kind == "zip":
        src = evil_zip(tmp_path / "evil.pt")
    else:
        src = tmp_path / "evil.bin"
        src.write_bytes(EVIL_BARE)
    dst = tmp_path / "out"
    dst.mkdir()
    before = set(os.listdir(tmp_path))
    with pytest.raises(ConversionError) as e:
        safeweights.convert(src, dst / "evil.safetensors")
    assert e.value.file == str(src)
    if kind == "zip":
        assert e.value.kind == "pickle_forbidden_global"
        assert e.value.member == "archive/data.pkl"
        assert e.value.offset is not None
        assert "posix.system" in str(e.value)
    assert os.listdir(dst) == []
    assert set(os.listdir(tmp_path)) == before


def test_scan_malicious_and_benign(tmp_path):
    evil_zip(tmp_path / "evil.pt")
    (tmp_path / "evil.bin").write_bytes(EVIL_BARE)
    torch.save({"w": torch.randn(2, 2)}, tmp_path / "benign.pt")
    sw.save_file({"w": torch.randn(2, 2)}, tmp_path / "ok.safetensors")

    report = safeweights.scan(tmp_path)
    assert isinstance(report, safeweights.ScanReport)
    assert not report and not report.ok and report.exit_code == 1
    assert report.highest == "critical" and report.fail_on == "medium"
    by_file = {}
    for f in report.findings:
        assert set(f) == {"severity", "rule", "file", "member", "what", "why", "offset", "fix"}
        by_file.setdefault(os.path.basename(f["file"]), []).append(f)
    assert {f["severity"] for f in by_file["evil.pt"]} == {"critical"}
    assert by_file["evil.pt"][0]["member"] == "archive/data.pkl"
    assert {f["severity"] for f in by_file["evil.bin"]} == {"critical"}
    assert {f["severity"] for f in by_file["benign.pt"]} == {"info"}
    assert "ok.safetensors" not in by_file
    assert report.summary["files"] == 4 and report.summary["findings"]["critical"] == 2
    formats = {os.path.basename(f["file"]): f["format"] for f in report.files if f["member"] is None}
    assert formats["ok.safetensors"] == "safetensors" and formats["benign.pt"] == "pytorch-zip"

    as_json = json.loads(report.to_json())
    assert as_json["findings"] == report.findings
    sarif = json.loads(report.to_sarif())
    assert sarif["version"] == "2.1.0" and len(sarif["runs"][0]["results"]) == len(report.findings)
    assert "critical=2" in repr(report)

    benign = safeweights.scan([tmp_path / "benign.pt", str(tmp_path / "ok.safetensors")])
    assert benign and benign.ok and benign.exit_code == 0
    assert [f["severity"] for f in benign.findings] == ["info"]
    assert not safeweights.scan(tmp_path / "benign.pt", fail_on="info")
    assert safeweights.scan(tmp_path / "evil.pt", fail_on="critical").exit_code == 1


def test_scan_policy_safetensors_only(tmp_path):
    torch.save({"w": torch.randn(2)}, tmp_path / "pytorch_model.bin")
    sw.save_file({"w": torch.randn(2)}, tmp_path / "model.safetensors")
    assert safeweights.scan(tmp_path)
    report = safeweights.scan(tmp_path, policy="safetensors-only")
    assert not report
    flagged = [f for f in report.findings if f["severity"] != "info"]
    assert flagged and all(f["file"].endswith("pytorch_model.bin") for f in flagged)
    assert any(f["rule"].startswith("policy.") for f in flagged)
    with pytest.raises(ValueError):
        safeweights.scan(tmp_path, policy="everything")
    with pytest.raises(ValueError):
        safeweights.scan(tmp_path, fail_on="severe")


def test_scan_missing_path_is_not_ok(tmp_path):
    report = safeweights.scan(tmp_path / "nope")
    assert report.exit_code == 2 and not report
    assert report.errors and report.errors[0]["file"].endswith("nope")
