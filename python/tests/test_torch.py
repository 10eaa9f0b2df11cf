"""safeweights against the reference safetensors 0.8, with torch."""

import threading

import pytest
import torch

import safetensors
import safetensors.torch as ref
import safeweights
import safeweights.torch as sw
from safeweights import SafetensorError, safe_open

DTYPES = [
    torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32,
    torch.int16, torch.int8, torch.uint8, torch.bool, torch.complex64, torch.uint16,
    torch.uint32, torch.uint64, torch.float8_e4m3fn, torch.float8_e5m2, torch.float8_e4m3fnuz,
    torch.float8_e5m2fnuz, torch.float8_e8m0fnu,
]


def make(dtype, shape=(3, 4)):
    raw = torch.randint(0, 120, shape, dtype=torch.uint8)
    if dtype == torch.bool:
        return raw % 2 == 0
    size = torch.empty(0, dtype=dtype).element_size()
    raw = torch.randint(0, 120, (*shape[:-1], shape[-1] * size), dtype=torch.uint8)
    return raw.view(dtype)


def same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert torch.equal(a.view(torch.uint8) if a.element_size() == 1 and a.dtype != torch.bool else a,
                       b.view(torch.uint8) if b.element_size() == 1 and b.dtype != torch.bool else b) or bytes(
        a.contiguous().view(torch.uint8).numpy()) == bytes(b.contiguous().view(torch.uint8).numpy())


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_every_dtype_bytes_and_roundtrip(dtype, tmp_file):
    tensors = {"x": make(dtype), "scalar": make(dtype, (1,)).reshape(()), "empty": make(dtype, (0, 2))}
    data = sw.save(tensors)
    assert data == ref.save(tensors)
    for loaded in (sw.load(data), ref.load(data) if dtype != torch.float8_e8m0fnu else None,
                   sw.load(bytearray(data)), sw.load(memoryview(data))):
        if loaded is None:
            continue
        for k, v in tensors.items():
            same(loaded[k], v)
    sw.save_file(tensors, tmp_file)
    with open(tmp_file, "rb") as fh:
        assert fh.read() == data
    for backend in ("mmap", "pread"):
        for k, v in sw.load_file(tmp_file, backend=backend).items():
            same(v, tensors[k])
    for k, v in ref.load_file(tmp_file).items():
        same(v, tensors[k])


def test_float4(tmp_file):
    t = torch.randint(0, 255, (2, 3), dtype=torch.uint8).view(torch.float4_e2m1fn_x2)
    data = sw.save({"a": t})
    assert data == ref.save({"a": t})
    assert b'"shape":[2,6]' in data
    assert sw.load(data)["a"].view(torch.uint8).tolist() == t.view(torch.uint8).tolist()
    sw.save_file({"a": t}, tmp_file)
    with safe_open(tmp_file, "pt") as f:
        assert f.get_slice("a").get_shape() == [2, 6]
        assert f.get_slice("a").get_dtype() == "F4"
        assert f.get_tensor("a").shape == (2, 3)
        assert f.get_slice("a")[:, 2:4].view(torch.uint8).tolist() == t.view(torch.uint8)[:, 1:2].tolist()
        with pytest.raises(SafetensorError, match="byte boundaries"):
            f.get_slice("a")[:, 1:2]


def test_reference_file_read_by_safeweights_and_back(tmp_file):
    tensors = {f"layer.{i}.weight": torch.randn(8, i + 1) for i in range(5)}
    tensors["ids"] = torch.arange(7)
    ref.save_file(tensors, tmp_file, metadata={"format": "pt"})
    with safe_open(tmp_file, "pt") as f:
        assert f.metadata() == {"format": "pt"}
        assert f.keys() == sorted(tensors)
        got = f.get_tensors()
    for k, v in tensors.items():
        assert torch.equal(got[k], v)
    with open(tmp_file, "rb") as fh:
        assert sw.save(tensors, metadata={"format": "pt"}) == fh.read()


def test_safe_open_api(tmp_file):
    tensors = {"b": torch.arange(12.0).reshape(3, 4), "a": torch.zeros(2, dtype=torch.int8)}
    sw.save_file(tensors, tmp_file, metadata={"k": "v"})
    f = safe_open(tmp_file, framework="pt", device="cpu")
    with f as g:
        assert g is f
        assert f.keys() == ["a", "b"]
        assert f.offset_keys() == ["b", "a"]
        assert f.metadata() == {"k": "v"}
        assert list(f.get_tensors()) == ["b", "a"]
        t = f.get_tensor("b")
        t.add_(1)  # copy-on-write mapping: writable, file unchanged
        s = f.get_slice("b")
    with pytest.raises(SafetensorError, match="File is closed"):
        f.keys()
    with pytest.raises(SafetensorError, match="File is closed"):
        f.get_tensor("b")
    assert torch.equal(s[1:], tensors["b"][1:])  # slices outlive the context
    assert torch.equal(safe_open(tmp_file, "pt").get_tensor("b"), tensors["b"])


@pytest.mark.parametrize("framework", ["pt", "torch", "pytorch"])
def test_framework_names(framework, tmp_file):
    sw.save_file({"a": torch.ones(2)}, tmp_file)
    assert isinstance(safe_open(tmp_file, framework).get_tensor("a"), torch.Tensor)


INDICES = [
    (slice(None),), (1,), (-1,), (slice(1, None),), (slice(None, -1),), (slice(None, None, 2),),
    (slice(1, None, 2), 3), (Ellipsis, 1), (Ellipsis,), (1, Ellipsis), (slice(None), slice(None, None, 3)),
    (slice(-3, -1), slice(None), -2), (0, 0, 0), (slice(5, 1),), (slice(None, None, -1),),
    (slice(None), slice(None, None, -2), slice(1, 3)),
]


@pytest.mark.parametrize("index", INDICES, ids=repr)
@pytest.mark.parametrize("backend", ["mmap", "pread"])
def test_slices(index, backend, tmp_file):
    t = torch.arange(4 * 5 * 6, dtype=torch.int32).reshape(4, 5, 6)
    sw.save_file({"t": t}, tmp_file)
    with safe_open(tmp_file, "pt", backend=backend) as f:
        s = f.get_slice("t")
        assert s.get_shape() == [4, 5, 6]
        assert s.get_dtype() == "I32"
        got = s[index if len(index) > 1 else index[0]]
    if any(isinstance(i, slice) and i.step is not None and i.step < 0 for i in index):
        idx = [i for i in index]
        expected = t.numpy()[tuple(idx)]
        assert got.numpy().tolist() == expected.tolist()
    else:
        assert torch.equal(got, t[index])


def test_slice_errors(tmp_file):
    sw.save_file({"t": torch.zeros(2, 5)}, tmp_file)
    with safe_open(tmp_file, "pt") as f:
        s = f.get_slice("t")
        with pytest.raises(IndexError, match="index 5 is out of bounds for dimension 0 with size 2"):
            s[5]
        with pytest.raises(IndexError, match="index 7 is out of bounds for dimension 1 with size 5"):
            s[:, 7]
        with pytest.raises(IndexError, match="too many indices for tensor of dimension 2"):
            s[0, 0, 0]
        with pytest.raises(ValueError, match="slice step cannot be zero"):
            s[:, ::0]
        with pytest.raises(IndexError, match="only integers"):
            s[1.0]
        with pytest.raises(IndexError, match="single ellipsis"):
            s[..., ...]


def test_errors(tmp_file, tmp_path):
    sw.save_file({"a": torch.zeros(2)}, tmp_file)
    with pytest.raises(FileNotFoundError, match="No such file or directory"):
        safe_open(str(tmp_path / "nope"), "pt")
    with pytest.raises(SafetensorError, match="framework foo is invalid"):
        safe_open(tmp_file, "foo")
    with pytest.raises(SafetensorError, match="device foo is invalid"):
        safe_open(tmp_file, "pt", device="foo")
    with pytest.raises(SafetensorError, match="device -1 is invalid"):
        safe_open(tmp_file, "pt", device=-1)
    with pytest.raises(ValueError, match="invalid digit"):
        safe_open(tmp_file, "pt", device="cuda:x")
    with pytest.raises(SafetensorError, match=r'backend "x" is invalid \(expected one of: "mmap", "pread"\)'):
        safe_open(tmp_file, "pt", backend="x")
    with safe_open(tmp_file, "pt") as f:
        with pytest.raises(SafetensorError, match="File does not contain tensor zz") as info:
            f.get_tensor("zz")
        assert info.value.tensor == "zz" and info.value.file == tmp_file
        assert isinstance(info.value, safeweights.TensorNotFoundError)
        with pytest.raises(SafetensorError, match="File does not contain tensor zz"):
            f.get_slice("zz")
    with open(tmp_file, "rb") as fh:
        good = fh.read()
    bad = tmp_path / "trailing.safetensors"
    bad.write_bytes(good + b"xx")
    with pytest.raises(SafetensorError, match="Error while deserializing header: incomplete metadata, file not fully covered") as info:
        safe_open(str(bad), "pt")
    assert isinstance(info.value, safeweights.SafetensorHeaderError)
    assert info.value.file == str(bad)
    bad.write_bytes(good[:-2])
    with pytest.raises(SafetensorError, match="incomplete metadata"):
        safe_open(str(bad), "pt")
    with pytest.raises(SafetensorError, match="Error while deserializing: header too small"):
        safeweights.deserialize(b"123")
    with pytest.raises(SafetensorError, match="Error while deserializing: header too large"):
        safeweights.deserialize(b"12345678901")
    with pytest.raises(SafetensorError, match="Error while deserializing: invalid JSON in header"):
        safeweights.deserialize((2).to_bytes(8, "little") + b"{x")
    with pytest.raises(SafetensorError, match="header too small"):
        sw.load(b"xx")
    with pytest.raises(SafetensorError, match="Error while serializing"):
        sw.save_file({"a": torch.zeros(1)}, str(tmp_path / "no" / "dir" / "x.safetensors"))


def test_save_refusals():
    t = torch.zeros(4)
    with pytest.raises(RuntimeError, match="Some tensors share memory") as mine:
        sw.save({"a": t, "b": t})
    with pytest.raises(RuntimeError) as theirs:
        ref.save({"a": t, "b": t})
    assert str(mine.value).replace("{'b', 'a'}", "{'a', 'b'}") == str(theirs.value).replace("{'b', 'a'}", "{'a', 'b'}")
    with pytest.raises(ValueError, match="You are trying to save a non contiguous tensor: `a`"):
        sw.save({"a": torch.zeros(3, 4).t()})
    with pytest.raises(ValueError, match="sparse tensors"):
        sw.save({"a": torch.zeros(3, 4).to_sparse()})
    with pytest.raises(ValueError, match=r"Expected a dict of \[str, torch.Tensor\]"):
        sw.save([1])
    with pytest.raises(ValueError, match="Key `a` is invalid, expected torch.Tensor"):
        sw.save({"a": 1})
    with pytest.raises(TypeError):
        sw.save({"a": torch.zeros(1)}, metadata={"a": 1})


class Tied(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(4, 4)
        self.b = torch.nn.Linear(4, 4)
        self.b.weight = self.a.weight


def test_save_model_load_model(tmp_file):
    model = Tied()
    sw.save_model(model, tmp_file)
    with safe_open(tmp_file, "pt") as f:
        assert f.keys() == ["a.bias", "a.weight", "b.bias"]
        assert f.metadata() == {"b.weight": "a.weight"}
    other = Tied()
    missing, unexpected = sw.load_model(other, tmp_file)
    assert not missing and not unexpected
    assert torch.equal(other.b.weight, model.a.weight)
    assert other.b.weight.data_ptr() == other.a.weight.data_ptr()
    # the reference reads what save_model wrote, and writes the same bytes
    ref_file = tmp_file + ".ref"
    ref.save_model(model, ref_file)
    with open(tmp_file, "rb") as x, open(ref_file, "rb") as y:
        assert x.read() == y.read()
    ref.load_model(Tied(), tmp_file)
    with pytest.raises(RuntimeError, match="Missing key"):
        sw.load_model(torch.nn.Linear(4, 4), tmp_file)


def test_helpers():
    t = torch.zeros(10)
    assert sw.storage_ptr(t) == t.data_ptr()
    assert sw.storage_size(t) == 40
    assert sw._find_shared_tensors({"a": t, "b": t[:5], "c": torch.zeros(1)}) == ref._find_shared_tensors(
        {"a": t, "b": t[:5], "c": torch.zeros(1)}
    ) or len(sw._find_shared_tensors({"a": t, "b": t[:5]})) == 1
    assert dict(sw._remove_duplicate_names({"a": t, "b": t})) == {"a": ["b"]}
    flat = sw._flatten({"a": torch.ones(2)})
    assert flat["a"]["dtype"] == "float32" and flat["a"]["shape"] == [2] and len(flat["a"]["data"]) == 8


def test_tensorspec_and_serialize():
    spec = safeweights.TensorSpec(dtype="float32", shape=[2], data_ptr=0, data_len=8)
    assert (spec.dtype, spec.shape, spec.data_len) == ("F32", [2], 8)
    assert repr(spec) == "TensorSpec(dtype='F32', shape=[2], data_ptr=0, data_len=8)"
    assert safeweights.TensorSpec(dtype="float4_e2m1fn_x2", shape=[2, 3], data_ptr=0, data_len=6).shape == [2, 6]
    with pytest.raises(SafetensorError, match='Unknown dtype "foo". Supported dtypes: bool'):
        safeweights.TensorSpec(dtype="foo", shape=[1], data_ptr=0, data_len=0)
    data = safeweights.serialize({}, metadata={"a": "b"})
    assert data == safetensors.serialize({}, metadata={"a": "b"})
    assert safeweights.deserialize(data) == []
    t = torch.arange(3, dtype=torch.int16)
    spec = safeweights.TensorSpec(dtype="int16", shape=[3], data_ptr=t.data_ptr(), data_len=6)
    out = safeweights.deserialize(safeweights.serialize({"t": spec}))
    assert out == [("t", {"shape": [3], "dtype": "I16", "data": bytearray(t.numpy().tobytes())})]
    with pytest.raises(SafetensorError, match="Error while serializing"):
        safeweights.serialize({"t": safeweights.TensorSpec(dtype="int16", shape=[3], data_ptr=t.data_ptr(), data_len=4)})


def test_top_level_exports_match_reference():
    for name in ["SafetensorError", "TensorSpec", "__version__", "deserialize", "safe_open",
                 "_safe_open_handle", "serialize", "serialize_file"]:
        assert hasattr(safeweights, name)
    for name in ["save", "save_file", "load", "load_file", "save_model", "load_model", "storage_ptr",
                 "storage_size", "_find_shared_tensors", "_remove_duplicate_names", "_flatten",
                 "_flatten_as_ptr", "_is_complete", "_end_ptr", "_SIZE", "_TYPES", "_tobytes"]:
        assert hasattr(sw, name), name


def test_safe_open_handle(tmp_file):
    import io

    sw.save_file({"a": torch.ones(2)}, tmp_file)
    with open(tmp_file, "rb") as fh:
        assert safeweights._safe_open_handle(fh, "pt").keys() == ["a"]
        fh.seek(0)
        mem = io.BytesIO(fh.read())
    f = safeweights._safe_open_handle(mem, "pt")
    assert torch.equal(f.get_tensor("a"), torch.ones(2))


def test_devices(tmp_file):
    sw.save_file({"a": torch.ones(2)}, tmp_file)
    assert safe_open(tmp_file, "pt", device="meta").get_tensor("a").device.type == "meta"
    assert safe_open(tmp_file, "pt", device=0)._device == "cuda:0"
    assert safe_open(tmp_file, "pt", device="cuda:1")._device == "cuda:1"
    assert safe_open(tmp_file, "pt", device="mps")._device == "mps"


def test_zero_copy_and_lifetime(tmp_file):
    sw.save_file({"a": torch.arange(1000.0)}, tmp_file)
    with safe_open(tmp_file, "pt") as f:
        t = f.get_tensor("a")
        u = f.get_tensor("a")
    assert t.untyped_storage().data_ptr() == u.untyped_storage().data_ptr()  # same mapping
    del f
    import gc

    gc.collect()
    assert t.sum().item() == sum(range(1000))


def test_threads(tmp_file):
    tensors = {f"t{i}": torch.randn(64, 64) for i in range(32)}
    sw.save_file(tensors, tmp_file)
    errors = []

    def work():
        try:
            for backend in ("mmap", "pread"):
                with safe_open(tmp_file, "pt", backend=backend) as f:
                    for k in f.keys():
                        assert torch.equal(f.get_tensor(k), tensors[k])
                        assert torch.equal(f.get_slice(k)[3:9, ::2], tensors[k][3:9, ::2])
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors


def test_misaligned_file(tmp_path):
    # A hand-made (valid) file whose F32 tensor starts at an odd data offset.
    header = b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}}'
    header += b" " * (-len(header) % 8)
    data = len(header).to_bytes(8, "little") + header + b"\x07" + torch.tensor([1.5, 2.5]).numpy().tobytes()
    p = tmp_path / "odd.safetensors"
    p.write_bytes(data)
    for backend in ("mmap", "pread"):
        got = sw.load_file(str(p), backend=backend)
        assert got["b"].tolist() == [1.5, 2.5] and got["a"].tolist() == [7]
    assert sw.load(data)["b"].tolist() == [1.5, 2.5]
