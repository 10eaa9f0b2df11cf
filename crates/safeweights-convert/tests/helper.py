"""Test helper for safeweights-convert: makes fixtures with real torch.save /
numpy.save / transformers save_pretrained, and checks converted outputs with
the reference readers (torch.load(weights_only=True), safetensors.torch,
numpy.load(allow_pickle=False)).

    python helper.py make DIR
    python helper.py check-st SRC OUT.safetensors [OUT2.safetensors ...]
    python helper.py check-bin SRC.safetensors OUT.bin
    python helper.py check-npz SRC OUT.npz
    python helper.py check-folder SRC_DIR OUT_DIR

Only files written by the test (fixtures) or by safeweights are loaded, and
always with weights_only=True / allow_pickle=False.
"""
import json
import os
import struct
import sys

import numpy as np
import torch

DTYPES_OK = [
    torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int8, torch.uint8,
    torch.int16, torch.int32, torch.int64, torch.bool, torch.complex64,
    torch.uint16, torch.uint32, torch.uint64,
    torch.float8_e4m3fn, torch.float8_e5m2, torch.float8_e4m3fnuz, torch.float8_e5m2fnuz,
]


def dtypes_dict():
    base = torch.tensor([0.0, 1.0, -2.5, 3.25, 0.5, -0.125])
    out = {}
    for dt in DTYPES_OK:
        name = str(dt).replace("torch.", "")
        if dt in (torch.uint16, torch.uint32, torch.uint64):
            out[name] = torch.tensor([[1, 2, 3], [4, 5, 65535]], dtype=torch.int64).to(dt)
        else:
            out[name] = base.to(dt).reshape(2, 3)
    raw = torch.tensor([[0x7F, 0x80], [0x01, 0x10]], dtype=torch.uint8)
    out["float8_e8m0fnu"] = raw.view(torch.float8_e8m0fnu)
    out["float4_e2m1fn_x2"] = raw.view(torch.float4_e2m1fn_x2)
    out["scalar"] = torch.tensor(7.5)
    out["empty"] = torch.zeros(0, 3)
    return out


def views_dict():
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    other = torch.arange(10, dtype=torch.int64)
    return {
        "base": base,
        "transposed": base.t(),
        "slice": base[1:3, 2:5],
        "strided": base[:, ::2],
        "row": base[2],
        "tied_b": base,
        "tied_a": base,
        "expanded": torch.arange(3.0).expand(4, 3),
        "tail": other[4:],  # offset view; storage not covered by any name
        "tail_alias": other[4:],
        "head": other[:4],
    }


def nested_obj():
    emb = torch.nn.Parameter(torch.randn(5, 4))
    return {
        "epoch": 3,
        "step": 1000,
        "lr": 0.001,
        "config": {"hidden": 4, "name": "tiny", "layers": [1, 2]},
        "state_dict": {
            "embed.weight": emb,
            "lm_head.weight": emb,
            "layers": [{"w": torch.randn(4, 4), "b": torch.zeros(4)} for _ in range(2)],
        },
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.001, "params": [0, 1]}]},
    }


def make(d):
    os.makedirs(d, exist_ok=True)
    torch.manual_seed(0)
    for name, obj in [("dtypes", dtypes_dict()), ("views", views_dict()), ("nested", nested_obj())]:
        torch.save(obj, os.path.join(d, f"{name}.pt"))
        legacy_obj = obj
        if name == "dtypes":
            # the legacy format has typed storages only
            legacy_obj = {k: v for k, v in obj.items()
                          if not any(s in k for s in ("uint16", "uint32", "uint64", "float8", "float4"))}
        torch.save(legacy_obj, os.path.join(d, f"{name}_legacy.pt"), _use_new_zipfile_serialization=False)
    torch.save(torch.nn.Parameter(torch.randn(3, 2)), os.path.join(d, "root_param.pt"))
    torch.save({"w": torch.randn(2, dtype=torch.float64).to(torch.complex128)}, os.path.join(d, "complex128.pt"))
    torch.save({"w": torch.quantize_per_tensor(torch.randn(4), 0.1, 10, torch.quint8)}, os.path.join(d, "quantized.pt"))
    torch.save({"w": torch.randn(4, 4).to_sparse()}, os.path.join(d, "sparse.pt"))
    # numpy
    rng = np.random.default_rng(0)
    arrays = {
        "f32": rng.standard_normal((3, 4)).astype(np.float32),
        "f64_fortran": np.asfortranarray(rng.standard_normal((3, 5))),
        "i16_be": np.arange(12, dtype=">i2").reshape(3, 4),
        "c64": (rng.standard_normal(4) + 1j * rng.standard_normal(4)).astype(np.complex64),
        "b": np.array([True, False, True]),
        "u8": np.arange(5, dtype=np.uint8),
        "u64": np.arange(3, dtype=np.uint64),
        "f16": np.ones((2, 2), dtype=np.float16),
        "scalar": np.array(3.5, dtype=np.float32),
        "empty": np.zeros((0, 2), dtype=np.int32),
    }
    np.save(os.path.join(d, "single.npy"), arrays["f32"])
    np.save(os.path.join(d, "fortran.npy"), arrays["f64_fortran"])
    np.savez(os.path.join(d, "arrays.npz"), **arrays)
    np.savez_compressed(os.path.join(d, "compressed.npz"), **arrays)
    np.save(os.path.join(d, "object.npy"), np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    # a Hugging Face folder, sharded .bin with index, laid out as
    # transformers < 5 wrote it (transformers 5 no longer writes .bin)
    from transformers import GPT2Config, GPT2LMHeadModel
    cfg = GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=128, n_positions=64)
    model = GPT2LMHeadModel(cfg)
    sd = model.state_dict()
    keys = list(sd)
    for folder, nshards in (("hf_model", 3), ("hf_single", 1)):
        hf = os.path.join(d, folder)
        cfg.save_pretrained(hf)
        if nshards == 1:
            torch.save(sd, os.path.join(hf, "pytorch_model.bin"))
            continue
        per = -(-len(keys) // nshards)
        weight_map, total = {}, 0
        for i in range(nshards):
            part = {k: sd[k] for k in keys[i * per:(i + 1) * per]}
            fname = f"pytorch_model-{i + 1:05d}-of-{nshards:05d}.bin"
            torch.save(part, os.path.join(hf, fname))
            for k, v in part.items():
                weight_map[k] = fname
                total += v.numel() * v.element_size()
        with open(os.path.join(hf, "pytorch_model.bin.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
        with open(os.path.join(hf, "tokenizer.json"), "w") as f:
            json.dump({"version": "1.0", "model": {"type": "BPE"}}, f)
        os.makedirs(os.path.join(hf, "extra"), exist_ok=True)
        with open(os.path.join(hf, "extra", "notes.txt"), "w") as f:
            f.write("hello\n")
        torch.save({"lr": 0.1}, os.path.join(hf, "training_args.bin"))
    # a bigger single file (several MB) to exercise chunked copies
    torch.save({"big": torch.randn(1024, 1024), "big_t": torch.randn(512, 2048).t()},
               os.path.join(d, "big.pt"))


# ---------------------------------------------------------------- checking

def flatten(obj, prefix, out):
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            flatten(v, f"{prefix}.{i}" if prefix else str(i), out)
    return out


def raw_bytes(t):
    t = t.detach().contiguous().reshape(-1)
    if t.numel() == 0:
        return b""
    return bytes(t.view(torch.uint8).numpy().tobytes())


ST_CODE = {
    torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int8: "I8", torch.uint8: "U8", torch.int16: "I16", torch.int32: "I32", torch.int64: "I64",
    torch.bool: "BOOL", torch.complex64: "C64", torch.uint16: "U16", torch.uint32: "U32",
    torch.uint64: "U64", torch.float8_e4m3fn: "F8_E4M3", torch.float8_e5m2: "F8_E5M2",
    torch.float8_e4m3fnuz: "F8_E4M3FNUZ", torch.float8_e5m2fnuz: "F8_E5M2FNUZ",
    torch.float8_e8m0fnu: "F8_E8M0", torch.float4_e2m1fn_x2: "F4",
}


def read_st_raw(path):
    """Our own minimal reader: name -> (dtype, shape, bytes), metadata."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]])
            for k, v in header.items()}, meta


def load_source(src):
    if src.endswith(".npy"):
        return {os.path.splitext(os.path.basename(src))[0]: torch.from_numpy(np.load(src, allow_pickle=False))}
    if src.endswith(".npz"):
        with np.load(src, allow_pickle=False) as z:
            return {k: torch.from_numpy(z[k].astype(z[k].dtype.newbyteorder("="), order="C")) for k in z.files}
    if src.endswith(".safetensors"):
        from safetensors.torch import load_file
        return load_file(src)
    return flatten(torch.load(src, weights_only=True, map_location="cpu"), "", {})


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def check_st(src, outs):
    from safetensors import safe_open
    from safetensors.torch import load_file
    expected = load_source(src)
    got, meta = {}, {}
    for out in outs:
        g, m = read_st_raw(out)
        got.update(g)
        meta.update(m or {})
        # the reference reads every file we write (dtypes it knows)
        known = {k for k, v in g.items() if v[0] not in ("F4", "F8_E8M0")}
        if len(known) == len(g):
            ref = load_file(out)
            for k in known:
                if raw_bytes(ref[k]) != g[k][2]:
                    fail(f"{out}: reference reader disagrees on {k}")
        else:
            with safe_open(out, framework="np") as f:
                f.keys()
    if meta.get("format") not in ("pt", "np"):
        fail(f"format metadata is {meta.get('format')!r}")
    for name, t in expected.items():
        if name in got:
            dtype, shape, data = got[name]
        elif name in meta and meta[name] in got:
            # dropped alias: must equal the kept tensor exactly
            kept = expected[meta[name]]
            if not (kept.dtype == t.dtype and kept.shape == t.shape and raw_bytes(kept) == raw_bytes(t)):
                fail(f"{name} dropped as alias of {meta[name]} but differs")
            continue
        else:
            fail(f"{name} missing from output")
        want_shape = list(t.shape)
        if t.dtype == torch.float4_e2m1fn_x2:
            want_shape[-1] *= 2
        if ST_CODE[t.dtype] != dtype or want_shape != shape:
            fail(f"{name}: {dtype} {shape} vs torch {t.dtype} {want_shape}")
        if raw_bytes(t) != data:
            fail(f"{name}: bytes differ")
    extra = set(got) - set(expected)
    if extra:
        fail(f"unexpected tensors {extra}")
    print("OK", len(got), "tensors")


def check_bin(src, out):
    expected = load_source(src)
    _, meta = read_st_raw(src) if src.endswith(".safetensors") else ({}, {})
    loaded = torch.load(out, weights_only=True, map_location="cpu")
    if not isinstance(loaded, dict):
        fail("not a dict")
    for name, t in expected.items():
        g = loaded.get(name)
        if g is None or g.dtype != t.dtype or g.shape != t.shape or raw_bytes(g) != raw_bytes(t):
            fail(f"{name} differs after torch.load")
    for alias, kept in (meta or {}).items():
        if alias != "format" and kept in expected and alias not in expected:
            if alias not in loaded:
                fail(f"alias {alias} not restored")
            if loaded[alias].untyped_storage().data_ptr() != loaded[kept].untyped_storage().data_ptr():
                fail(f"alias {alias} does not share storage with {kept}")
    print("OK", len(loaded), "tensors")


def check_npz(src, out):
    expected = load_source(src)
    with np.load(out, allow_pickle=False) as z:
        if set(z.files) != set(expected):
            fail(f"names {sorted(z.files)} vs {sorted(expected)}")
        for k in z.files:
            a, t = z[k], expected[k]
            if list(a.shape) != list(t.shape) or a.tobytes() != raw_bytes(t):
                fail(f"{k} differs")
    print("OK", len(expected), "arrays")


def check_folder(src, out):
    idx = os.path.join(src, "pytorch_model.bin.index.json")
    files = sorted(set(json.load(open(idx))["weight_map"].values())) if os.path.exists(idx) else ["pytorch_model.bin"]
    expected = {}
    for f in files:
        expected.update(flatten(torch.load(os.path.join(src, f), weights_only=True), "", {}))
    outs = sorted(os.path.join(out, f) for f in os.listdir(out) if f.endswith(".safetensors"))
    if len(files) > 1 or len(outs) > 1:
        oidx = json.load(open(os.path.join(out, "model.safetensors.index.json")))
        for name, shard in oidx["weight_map"].items():
            with open(os.path.join(out, shard), "rb") as fh:
                n = struct.unpack("<Q", fh.read(8))[0]
                if name not in json.loads(fh.read(n)):
                    fail(f"index puts {name} in {shard}, which does not hold it")
    import tempfile
    tmp = os.path.join(tempfile.mkdtemp(), "_all.pt")
    torch.save(expected, tmp)
    try:
        check_st(tmp, outs)
    finally:
        os.remove(tmp)
    # transformers loads the converted folder and gives the same logits
    from transformers import AutoModelForCausalLM
    a = AutoModelForCausalLM.from_pretrained(src, use_safetensors=False).eval()
    b = AutoModelForCausalLM.from_pretrained(out, use_safetensors=True).eval()
    ids = torch.arange(16).reshape(1, 16)
    with torch.no_grad():
        if not torch.equal(a(ids).logits, b(ids).logits):
            fail("logits differ")
    print("OK folder")


def make_libraries(d):
    """Folders as diffusers, peft and sentence-transformers wrote them with
    .bin weights: a pipeline with component folders (one sharded, one a
    transformers model, one with an fp16 variant), a peft adapter beside
    its base model, a sentence-transformers model with a Dense module."""
    torch.manual_seed(1)
    from transformers import GPT2Config, GPT2LMHeadModel
    pipe = os.path.join(d, "pipeline")
    os.makedirs(pipe, exist_ok=True)
    with open(os.path.join(pipe, "model_index.json"), "w") as f:
        json.dump({"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.30.0",
                   "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
                   "text_encoder": ["transformers", "CLIPTextModel"],
                   "scheduler": ["diffusers", "PNDMScheduler"], "safety_checker": [None, None]}, f)
    unet = {"conv_in.weight": torch.randn(4, 4, 3, 3), "conv_in.bias": torch.randn(4)}
    os.makedirs(os.path.join(pipe, "unet"))
    torch.save(unet, os.path.join(pipe, "unet", "diffusion_pytorch_model.bin"))
    torch.save({k: v.half() for k, v in unet.items()}, os.path.join(pipe, "unet", "diffusion_pytorch_model.fp16.bin"))
    with open(os.path.join(pipe, "unet", "config.json"), "w") as f:
        json.dump({"_class_name": "UNet2DConditionModel"}, f)
    vae = {"encoder.conv_in.weight": torch.randn(8, 3), "decoder.conv_out.weight": torch.randn(3, 8),
           "quant_conv.bias": torch.randn(8)}
    os.makedirs(os.path.join(pipe, "vae"))
    weight_map = {}
    keys = list(vae)
    for i, part in enumerate((keys[:2], keys[2:])):
        fname = f"diffusion_pytorch_model-{i + 1:05d}-of-00002.bin"
        torch.save({k: vae[k] for k in part}, os.path.join(pipe, "vae", fname))
        weight_map.update({k: fname for k in part})
    with open(os.path.join(pipe, "vae", "diffusion_pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f)
    torch.save(vae, os.path.join(d, "vae_all.pt"))
    cfg = GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=64, n_positions=32)
    te = os.path.join(pipe, "text_encoder")
    cfg.save_pretrained(te)
    torch.save(GPT2LMHeadModel(cfg).state_dict(), os.path.join(te, "pytorch_model.bin"))
    os.makedirs(os.path.join(pipe, "scheduler"))
    with open(os.path.join(pipe, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump({"_class_name": "PNDMScheduler"}, f)
    # peft: an adapter beside its base model
    peft = os.path.join(d, "peft")
    os.makedirs(peft)
    torch.save({"base_model.model.transformer.h.0.attn.c_attn.lora_A.weight": torch.randn(4, 16),
                "base_model.model.transformer.h.0.attn.c_attn.lora_B.weight": torch.zeros(48, 4)},
               os.path.join(peft, "adapter_model.bin"))
    with open(os.path.join(peft, "adapter_config.json"), "w") as f:
        json.dump({"peft_type": "LORA", "r": 4}, f)
    # sentence-transformers: the transformer at the root, a Dense module
    st = os.path.join(d, "sentence")
    cfg.save_pretrained(st)
    torch.save(GPT2LMHeadModel(cfg).state_dict(), os.path.join(st, "pytorch_model.bin"))
    with open(os.path.join(st, "modules.json"), "w") as f:
        json.dump([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                   {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                   {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}], f)
    os.makedirs(os.path.join(st, "1_Pooling"))
    with open(os.path.join(st, "1_Pooling", "config.json"), "w") as f:
        json.dump({"word_embedding_dimension": 16}, f)
    os.makedirs(os.path.join(st, "2_Dense"))
    torch.save({"linear.weight": torch.randn(8, 16), "linear.bias": torch.randn(8)},
               os.path.join(st, "2_Dense", "pytorch_model.bin"))
    with open(os.path.join(st, "2_Dense", "config.json"), "w") as f:
        json.dump({"in_features": 16, "out_features": 8}, f)


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"make": lambda: make(args[0]),
     "make-libraries": lambda: make_libraries(args[0]),
     "check-st": lambda: check_st(args[0], args[1:]),
     "check-bin": lambda: check_bin(args[0], args[1]),
     "check-npz": lambda: check_npz(args[0], args[1]),
     "check-folder": lambda: check_folder(args[0], args[1])}[cmd]()
