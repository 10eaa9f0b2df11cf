"""Exceptions carry typed attributes: kind, file, tensor, offset."""

import os
import zipfile

import numpy as np
import pytest

import safeweights
import safeweights.numpy as sw
from safeweights import (
    ConversionError,
    SafetensorError,
    SafetensorHeaderError,
    TensorNotFoundError,
    safe_open,
)


def raw(header: bytes, data: bytes) -> bytes:
    return len(header).to_bytes(8, "little") + header + data


def test_classes_declare_the_attributes():
    for cls in (SafetensorError, SafetensorHeaderError, TensorNotFoundError, ConversionError):
        for name in ("kind", "file", "tensor", "offset"):
            assert getattr(cls, name) is None
    assert ConversionError.member is None
    e = SafetensorError("by hand")
    assert (e.kind, e.file, e.tensor, e.offset) == (None, None, None, None)


def test_header_errors(tmp_path):
    good = tmp_path / "good.safetensors"
    sw.save_file({"a": np.ones(2, dtype=np.float32)}, str(good))
    bad = tmp_path / "trailing.safetensors"
    bad.write_bytes(good.read_bytes() + b"xx")
    with pytest.raises(SafetensorHeaderError) as e:
        safe_open(str(bad), "np")
    assert e.value.kind == "trailing_bytes"
    assert e.value.file == str(bad)
    assert e.value.tensor is None and e.value.offset is None
    assert str(e.value).startswith("Error while deserializing header: incomplete metadata")

    overlap = raw(
        b'{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},'
        b'"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}',
        b"\0\0\0",
    )
    with pytest.raises(SafetensorHeaderError) as e:
        safeweights.deserialize(overlap)
    assert (e.value.kind, e.value.file, e.value.tensor) == ("overlap", "<memory>", "b")
    assert str(e.value) == (
        "Error while deserializing: invalid offset: <memory>: tensor \"b\": starts at data "
        "offset 1 but the previous tensor ends at 2: the tensors overlap"
    )

    bad_utf8 = raw(b'{"\xff":1}', b"")
    with pytest.raises(SafetensorHeaderError) as e:
        safeweights.deserialize(bad_utf8)
    assert e.value.kind == "invalid_utf8"
    assert e.value.offset == 10

    with pytest.raises(SafetensorHeaderError) as e:
        safeweights.deserialize(b"123")
    assert e.value.kind == "header_too_small"


def test_missing_tensor_file_and_slices(tmp_path):
    path = str(tmp_path / "m.safetensors")
    sw.save_file({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, path)
    with safe_open(path, "np") as f:
        with pytest.raises(TensorNotFoundError) as e:
            f.get_tensor("zz")
        assert (e.value.kind, e.value.file, e.value.tensor) == ("tensor_not_found", path, "zz")
        with pytest.raises(IndexError) as e:
            f.get_slice("w")[5]
        assert (e.value.kind, e.value.file, e.value.tensor) == ("index_out_of_range", path, "w")
        with pytest.raises(ValueError) as e:
            f.get_slice("w")[::0]
        assert e.value.kind == "zero_step"
    missing = str(tmp_path / "missing.safetensors")
    with pytest.raises(FileNotFoundError) as e:
        safe_open(missing, "np")
    assert (e.value.kind, e.value.file) == ("io", missing)


def test_conversion_errors(tmp_path):
    src = tmp_path / "a.npy"
    np.save(src, np.ones(3, dtype=np.float32))
    dst = tmp_path / "a.safetensors"
    safeweights.convert(src, dst)
    with pytest.raises(ConversionError) as e:
        safeweights.convert(src, dst)
    assert (e.value.kind, e.value.file, e.value.tensor, e.value.offset) == (
        "destination_exists",
        str(dst),
        None,
        None,
    )
    assert e.value.member is None

    evil = tmp_path / "evil.pt"
    pickle = b"\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03."
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("archive/data.pkl", pickle)
        z.writestr("archive/version", "3\n")
    with pytest.raises(ConversionError) as e:
        safeweights.convert(evil, tmp_path / "evil.safetensors")
    assert (e.value.kind, e.value.file, e.value.member) == ("pickle_forbidden_global", str(evil), "archive/data.pkl")
    assert e.value.offset == 2
    assert not os.path.exists(tmp_path / "evil.safetensors")

    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(dst.read_bytes() + b"xx")
    with pytest.raises(ConversionError) as e:
        safeweights.convert(bad, tmp_path / "b.npz")
    assert (e.value.kind, e.value.file) == ("trailing_bytes", str(bad))
