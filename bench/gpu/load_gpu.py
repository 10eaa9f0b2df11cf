"""Load benchmark on a GPU (or the CPU): safeweights against the reference
safetensors and the other fast loaders, in one run, with a byte-identity check
of every loader's result.

Usage:
  python bench/gpu/load_gpu.py CKPT... [--device cuda:0] [--runs 3] [--cold]
  python bench/gpu/load_gpu.py CKPT... --dry-run       # no GPU needed
  python bench/gpu/load_gpu.py --h2d-only               # pinned H2D bandwidth only

CKPT: a folder (its *.safetensors.index.json, else every *.safetensors in it),
an index file, or .safetensors files.

Rows (each returns {name: tensor} on --device; timings include
torch.cuda.synchronize()):

  safeweights load_checkpoint   safeweights.torch.load_checkpoint(files, device=,
                                threads=, memory_budget=): the parallel engine,
                                file -> pinned ring -> GPU. THE headline row.
  safeweights load_file         safeweights.torch.load_file(file, device=) per
                                file (drop-in for safetensors.torch.load_file)
  safeweights safe_open         safeweights.safe_open(file, "pt", device=) and
                                get_tensor(k) per key (the drop-in pattern of
                                transformers: one engine load per tensor)
  reference safe_open           safetensors 0.8 safe_open(file, "pt", device=)
                                + get_tensor(k) per key
  fastsafetensors               SafeTensorsFileLoader(SingleGroup(), device,
                                nogds=True); add_filenames({0: files});
                                copy_files_to_device(); get_tensor(k)
  instanttensor                 instanttensor.safe_open(files, framework="pt",
                                device=); tensors()  (CUDA only)
  runai-model-streamer          SafetensorsStreamer().stream_files(files,
                                device=); get_tensors()

On the CPU, the loaders that return lazy views of a memory map (reference and
safeweights load_file/safe_open with backend mmap) have each tensor
materialised with .clone() inside the timing: every row then delivers every
byte in memory that the process owns.

Checks, per row and run: the set of names, every dtype and shape, and the
bytes of a sample of tensors (--check N; first and last of each file, the
largest, then random ones; 'all' for every tensor) equal the reference
safetensors loaded on the CPU. A mismatch is printed as MISMATCH and the row
is excluded from the ratios: a fast but wrong loader shows.

Cold runs (--cold): before each run, `echo 3 > /proc/sys/vm/drop_caches`
(root only) and posix_fadvise(DONTNEED) on every file; which of them worked
and the share of the files' pages still resident afterwards (mincore) are
printed. tmpfs cannot be evicted (it is the page cache): --cold on tmpfs is
refused. A disk baseline is measured in the same state: parallel O_DIRECT
reads of the files (--disk-threads, 16 MiB blocks) into aligned buffers.

--dry-run: --device cpu, one run, warm then cold, every row, every check,
the machine description and the summary; the CUDA-only steps (pinned H2D,
instanttensor) are reported as skipped with the reason. For a machine without
a GPU, to prove the script before it is carried to one.

Output: one JSON line per row on stdout; the machine, the table, ratios and
goals on stderr.
"""
import argparse
import ctypes
import gc
import glob
import json
import mmap
import os
import platform
import queue
import random
import statistics
import struct
import subprocess
import sys
import threading
import time

import torch

SAFEWEIGHTS = "safeweights load_checkpoint"
REFERENCE = "reference safe_open"

# --- checkpoint discovery ----------------------------------------------------


def discover(paths):
    """The .safetensors files of folders / index files / files, sorted, unique."""
    out = []
    for p in paths:
        if os.path.isdir(p):
            idx = sorted(glob.glob(os.path.join(p, "*.safetensors.index.json")))
            if idx:
                out += index_files(idx[0])
            else:
                out += sorted(glob.glob(os.path.join(p, "*.safetensors")))
        elif p.endswith(".json"):
            out += index_files(p)
        elif os.path.isfile(p):
            out.append(p)
        else:
            raise SystemExit(f"load_gpu.py: {p}: no such file or folder")
    files = []
    for f in out:
        f = os.path.abspath(f)
        if f not in files:
            files.append(f)
    if not files:
        raise SystemExit(f"load_gpu.py: no .safetensors file in {' '.join(paths)}")
    return files


def index_files(index):
    with open(index) as f:
        weight_map = json.load(f)["weight_map"]
    base = os.path.dirname(index)
    return sorted({os.path.join(base, v) for v in weight_map.values()})


def header(path):
    """{name: (dtype, shape, nbytes)} of one file, in offset order."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        h = json.loads(f.read(n))
    h.pop("__metadata__", None)
    items = sorted(h.items(), key=lambda kv: kv[1]["data_offsets"][0])
    return {k: (v["dtype"], list(v["shape"]), v["data_offsets"][1] - v["data_offsets"][0]) for k, v in items}


# --- machine -----------------------------------------------------------------


def sh(*cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return r.stdout.strip() if r.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def read(path, default=""):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def mount_of(path):
    """(mount point, fstype, source) of the file system holding path, from mountinfo."""
    path = os.path.realpath(path)
    best = ("/", "?", "?")
    for line in read("/proc/self/mountinfo").splitlines():
        left, _, right = line.partition(" - ")
        f, r = left.split(), right.split()
        if len(f) < 5 or len(r) < 2:
            continue
        mp = f[4].replace("\\040", " ")
        if (path == mp or path.startswith(mp.rstrip("/") + "/")) and len(mp) >= len(best[0]):
            best = (mp, r[0], r[1])
    return best


def storage(path):
    mp, fstype, source = mount_of(path)
    desc = f"{fstype} at {mp} ({source})"
    if fstype in ("tmpfs", "ramfs"):
        return desc + ", RAM: the page cache itself", fstype
    dev = os.path.basename(source) if source.startswith("/dev/") else ""
    if dev:
        parent = sh("lsblk", "-ndo", "PKNAME", source) or dev
        blk = f"/sys/block/{parent}"
        model = read(f"{blk}/device/model") or sh("lsblk", "-ndo", "MODEL", f"/dev/{parent}")
        rota = read(f"{blk}/queue/rotational")
        kind = {"0": "SSD/NVMe", "1": "rotational"}.get(rota, "?")
        if parent.startswith("md") or parent.startswith("dm-"):
            slaves = os.listdir(f"{blk}/slaves") if os.path.isdir(f"{blk}/slaves") else []
            kind += f", {parent} over {' '.join(sorted(slaves)) or '?'}"
        desc += f", {parent}: {model or 'unknown model'} [{kind}]"
    return desc, fstype


def machine(device, path):
    cpu = "unknown CPU"
    for line in read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    sockets = len({l for l in read("/proc/cpuinfo").splitlines() if l.startswith("physical id")}) or "?"
    mem = 0
    for line in read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal"):
            mem = int(line.split()[1]) * 1024
    numa = len(glob.glob("/sys/devices/system/node/node[0-9]*")) or "?"
    info = {
        "cpu": f"{cpu}, {os.cpu_count()} logical CPUs ({len(os.sched_getaffinity(0))} usable), "
        f"{sockets} socket(s), {numa} NUMA node(s)",
        "ram": f"{mem / 2**30:.1f} GiB",
        "os": f"{platform.platform()}",
        "python": platform.python_version(),
        "torch": f"{torch.__version__} (CUDA {torch.version.cuda})",
        "storage": storage(path)[0],
    }
    if device.startswith("cuda"):
        idx = torch.device(device).index or 0
        p = torch.cuda.get_device_properties(idx)
        q = sh(
            "nvidia-smi",
            f"--id={idx}",
            "--query-gpu=driver_version,pcie.link.gen.current,pcie.link.gen.max,pcie.link.width.current",
            "--format=csv,noheader",
        )
        info["gpu"] = f"{p.name}, {p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs"
        if q:
            drv, gen, genmax, width = [s.strip() for s in q.split(",")]
            info["driver"] = f"{drv}; PCIe gen {gen} (max {genmax}) x{width}"
        else:
            info["driver"] = "nvidia-smi not found or failed"
        topo = sh("nvidia-smi", "topo", "-m")
        if topo:
            info["gpu_numa"] = next((l.split()[-1] for l in topo.splitlines() if l.startswith(f"GPU{idx}")), "?")
    else:
        info["gpu"] = "none used (--device cpu)"
    info["safeweights"] = safeweights_info(device)
    return info


def safeweights_info(device):
    try:
        import safeweights
        from safeweights import _loader
        from safeweights._safeweights import _cuda_status
    except Exception as e:  # noqa: BLE001
        return f"not importable: {type(e).__name__}: {e}"
    ok, detail = _cuda_status()
    where = os.path.dirname(safeweights.__file__)
    s = f"{safeweights.__version__} from {where}; engine CUDA: {'yes, ' + detail if ok else 'no (' + detail + ')'}"
    if device.startswith("cuda") and _loader.engine_cuda_index(device) is None:
        s += "; WARNING: tensors for cuda will be loaded on the CPU and moved with .to()"
    return s


# --- page cache --------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]


def resident(files):
    """Share of the files' pages in the page cache (mincore on a private map)."""
    page = mmap.PAGESIZE
    res = tot = 0
    for p in files:
        size = os.path.getsize(p)
        if size == 0:
            continue
        with open(p, "rb") as f:
            m = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY)
        try:
            anchor = ctypes.c_char.from_buffer(m)
            n = (size + page - 1) // page
            vec = (ctypes.c_ubyte * n)()
            if _libc.mincore(ctypes.addressof(anchor), size, vec) == 0:
                res += sum(b & 1 for b in vec)
                tot += n
            del anchor
        finally:
            m.close()
    return res / tot if tot else float("nan")


def evict(files):
    """Drop the files from the page cache; returns how."""
    how = []
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3")
        how.append("drop_caches")
    except OSError as e:
        how.append(f"no drop_caches ({e.strerror})")
    for p in files:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    how.append("posix_fadvise(DONTNEED)")
    return " + ".join(how)


def warm(files):
    for p in files:
        with open(p, "rb", buffering=0) as f:
            while f.read(64 << 20):
                pass


# --- baselines ---------------------------------------------------------------


def disk_read(files, threads, block=16 << 20):
    """Parallel reads of every byte of the files with O_DIRECT (buffered where
    refused, e.g. tmpfs) into aligned buffers: what the storage delivers.
    Returns (seconds, bytes, mode)."""
    jobs = queue.Queue()
    total = 0
    for p in files:
        size = os.path.getsize(p)
        total += size
        for off in range(0, size, block):
            jobs.put((p, off))
    modes, errors = set(), []

    def worker():
        buf = mmap.mmap(-1, block)  # page aligned, as O_DIRECT wants
        fds = {}
        try:
            while True:
                try:
                    p, off = jobs.get_nowait()
                except queue.Empty:
                    return
                fd = fds.get(p)
                if fd is None:
                    try:
                        fd = os.open(p, os.O_RDONLY | os.O_DIRECT)
                        modes.add("O_DIRECT")
                    except OSError:
                        fd = os.open(p, os.O_RDONLY)
                        modes.add("buffered (O_DIRECT refused)")
                    fds[p] = fd
                try:
                    os.preadv(fd, [buf], off)
                except OSError as e:
                    errors.append(f"{p}@{off}: {e}")
                    return
        finally:
            for fd in fds.values():
                os.close(fd)
            buf.close()

    t = time.perf_counter()
    ws = [threading.Thread(target=worker) for _ in range(threads)]
    for w in ws:
        w.start()
    for w in ws:
        w.join()
    s = time.perf_counter() - t
    if errors:
        raise OSError(errors[0])
    return s, total, "+".join(sorted(modes))


def h2d_gbps(device, gib=1, runs=5):
    """Pinned host -> device copy bandwidth with torch: a 1 GiB pinned tensor,
    .to(device, non_blocking=True), synchronize; best of `runs`."""
    n = gib << 30
    src = torch.empty(n, dtype=torch.uint8).pin_memory()
    src.fill_(1)
    dst = torch.empty(n, dtype=torch.uint8, device=device)
    dst.copy_(src, non_blocking=True)  # warm-up
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        out = src.to(device, non_blocking=True)
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
        del out
    del src, dst
    torch.cuda.empty_cache()
    return n / best / 1e9


def memcpy_gbps(gib=1, runs=3):
    """CPU memory copy bandwidth with torch (copy_ uses torch's intra-op threads)."""
    n = gib << 30
    src = torch.ones(n, dtype=torch.uint8)
    dst = torch.empty(n, dtype=torch.uint8)
    dst.copy_(src)
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t)
    return n / best / 1e9


# --- loaders: each returns {name: tensor on device} --------------------------


class Skip(Exception):
    """The row cannot run here; the message says why."""


def materialise(tensors, device):
    # Lazy CPU views of a memory map read nothing until touched: own the bytes.
    if device == "cpu":
        return {k: v.clone() for k, v in tensors.items()}
    return tensors


def load_safeweights(files, device, opts):
    from safeweights.torch import load_checkpoint

    return load_checkpoint(files, device=device, threads=opts.threads, memory_budget=opts.memory_budget)


def load_safeweights_file(files, device, opts):
    from safeweights.torch import load_file

    out = {}
    for p in files:
        out.update(load_file(p, device=device))
    return materialise(out, device)


def load_safeweights_open(files, device, opts):
    from safeweights import safe_open

    out = {}
    for p in files:
        with safe_open(p, framework="pt", device=device) as f:
            for k in f.keys():
                out[k] = f.get_tensor(k)
    return materialise(out, device)


def load_reference(files, device, opts):
    from safetensors import safe_open

    out = {}
    for p in files:
        with safe_open(p, framework="pt", device=device) as f:
            for k in f.keys():
                out[k] = f.get_tensor(k)
    return materialise(out, device)


def load_fastsafetensors(files, device, opts):
    from fastsafetensors import SafeTensorsFileLoader, SingleGroup

    # pg, device (a string), nogds: pread into bounce buffers, then copies to
    # the device (no GPUDirect Storage). Tensors from get_tensor share
    # ownership of fastsafetensors' buffers and outlive fb.close().
    loader = SafeTensorsFileLoader(SingleGroup(), device, nogds=True)
    try:
        loader.add_filenames({0: list(files)})
        keys = loader.get_keys()
        fb = loader.copy_files_to_device()
        try:
            out = {k: fb.get_tensor(k) for k in keys}
        finally:
            fb.close()
    finally:
        loader.close()
    return out


def load_instanttensor(files, device, opts):
    from instanttensor import safe_open

    # CUDA only (its constructor raises ValueError for other devices). It
    # sorts the list it is given in place: pass a copy. copy=True (default):
    # each tensor owns its memory and outlives the context.
    out = {}
    with safe_open(list(files), framework="pt", device=device) as f:
        for name, tensor in f.tensors():
            out[name] = tensor
    return out


def load_runai(files, device, opts):
    from runai_model_streamer import SafetensorsStreamer

    # stream_files(paths, device=...): the streamer copies each tensor to the
    # device itself; owned=True (default): tensors stay valid after the loop.
    out = {}
    with SafetensorsStreamer() as streamer:
        streamer.stream_files(list(files), device=device)
        for name, tensor in streamer.get_tensors():
            out[name] = tensor
    return out


LOADERS = {
    SAFEWEIGHTS: load_safeweights,
    "safeweights load_file": load_safeweights_file,
    "safeweights safe_open": load_safeweights_open,
    REFERENCE: load_reference,
    "fastsafetensors": load_fastsafetensors,
    "instanttensor": load_instanttensor,
    "runai-model-streamer": load_runai,
}
OURS = {SAFEWEIGHTS, "safeweights load_file", "safeweights safe_open"}


# --- byte identity -------------------------------------------------------------


def as_bytes(t):
    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    return t.contiguous().reshape(-1).view(torch.uint8)


class Expected:
    """What every loader must return: names, dtypes, shapes, and the bytes of a
    sample of tensors read by the reference on the CPU."""

    DTYPES = {
        "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
        "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
        "BOOL": "bool", "U16": "uint16", "U32": "uint32", "U64": "uint64",
        "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2", "C64": "complex64",
    }

    def __init__(self, files, check, seed=0):
        self.meta = {}
        by_file = []
        for p in files:
            h = header(p)
            by_file.append((p, list(h)))
            for k, v in h.items():
                if k in self.meta:
                    raise SystemExit(f"load_gpu.py: tensor {k} is in more than one file")
                self.meta[k] = v
        self.bytes = sum(v[2] for v in self.meta.values())
        names = list(self.meta)
        if check == "all":
            sample = names
        else:
            n = int(check)
            first = [k for _, ks in by_file if ks for k in (ks[0], ks[-1])]
            if names:
                first.append(max(names, key=lambda k: self.meta[k][2]))
            first = list(dict.fromkeys(first))[:n]
            taken = set(first)
            rest = [k for k in names if k not in taken]
            random.Random(seed).shuffle(rest)
            sample = first + rest[: max(0, n - len(first))]
        self.sample = list(dict.fromkeys(sample))
        from safetensors import safe_open

        self.ref = {}
        want = set(self.sample)
        for p, ks in by_file:
            todo = [k for k in ks if k in want]
            if todo:
                with safe_open(p, framework="pt", device="cpu") as f:
                    for k in todo:
                        self.ref[k] = as_bytes(f.get_tensor(k)).clone()

    def check(self, tensors, device):
        """A list of problems (empty: identical)."""
        bad = []
        got, want = set(tensors), set(self.meta)
        if got != want:
            miss, extra = sorted(want - got), sorted(got - want)
            bad.append(f"names: {len(miss)} missing {miss[:3]}, {len(extra)} unexpected {extra[:3]}")
        dev = torch.device(device)
        for k, t in tensors.items():
            if k not in self.meta:
                continue
            dtype, shape, nbytes = self.meta[k]
            if t.device.type != dev.type or (dev.index is not None and t.device.index != dev.index):
                bad.append(f"{k}: on {t.device}, not {device}")
            tname = self.DTYPES.get(dtype)
            if tname and getattr(torch, tname, None) is not None and t.dtype != getattr(torch, tname):
                bad.append(f"{k}: dtype {t.dtype}, file says {dtype}")
            if list(t.shape) != shape and dtype not in ("F4",):
                bad.append(f"{k}: shape {list(t.shape)}, file says {shape}")
            if t.numel() * t.element_size() != nbytes:
                bad.append(f"{k}: {t.numel() * t.element_size()} bytes, file says {nbytes}")
            if len(bad) > 10:
                break
        for k in self.sample:
            if k in tensors and not torch.equal(as_bytes(tensors[k]), self.ref[k]):
                bad.append(f"{k}: bytes differ from the reference")
        return bad


# --- the runs ----------------------------------------------------------------


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def free(device):
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def device_free(device):
    return torch.cuda.mem_get_info(torch.device(device))[0] if device.startswith("cuda") else 0


def run_loader(name, fn, files, device, expected, a, cold):
    times, problems, evicted, res_before = [], [], "", []
    free(device)
    base = device_free(device)
    for i in range(a.runs):
        if cold:
            evicted = evict(files)
            res_before.append(resident(files))
        sync(device)
        t = time.perf_counter()
        try:
            tensors = fn(files, device, a)
            sync(device)
        except ImportError as e:
            return {"skipped": f"not installed ({e})"}
        except Exception as e:  # noqa: BLE001 - any failure of a peer is a skip with its reason
            return {"skipped": f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"}
        times.append(time.perf_counter() - t)
        if i == 0 or a.check_every_run:
            problems += expected.check(tensors, device)
        del tensors
        free(device)
        if a.release_pinned and name in OURS:
            from safeweights.torch import release_pinned_memory

            release_pinned_memory()
    med = statistics.median(times[1:] if len(times) > 2 else times)
    row = {
        "seconds": med,
        "gb_per_s": expected.bytes / med / 1e9,
        "first_seconds": times[0],
        "first_gb_per_s": expected.bytes / times[0] / 1e9,
        "best_gb_per_s": expected.bytes / min(times) / 1e9,
        "runs": len(times),
        "identical": not problems,
    }
    if problems:
        row["problems"] = problems[:10]
    if cold:
        row["evicted_by"] = evicted
        row["resident_before"] = max(res_before)
    if device.startswith("cuda"):
        # Device memory not given back once the tensors are gone (a leak, or
        # a pool the loader keeps).
        kept = (base - device_free(device)) / 2**20
        if kept > 64:
            row["device_mib_not_returned"] = round(kept)
    return row


def rust_example(paths, device, cold):
    """The Rust engine alone (no torch), through the safeweights-load example."""
    exe = os.environ.get("SAFEWEIGHTS_LOAD_EXAMPLE")
    if not exe:
        return None
    if len(paths) != 1:
        return {"skipped": "the example takes one path (a folder, an index or a file)"}
    args = [exe, paths[0], "--device", device] + (["--cold"] if cold else [])
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        return {"skipped": f"exit {r.returncode}: {r.stderr.strip()[-300:]}"}
    rep = json.loads(r.stdout.strip().splitlines()[-1])
    modes = sorted({str(f.get("mode")) for f in rep.get("files", [])})
    return {"seconds": rep.get("seconds"), "gb_per_s": rep.get("gb_per_s"), "threads": rep.get("threads"),
            "modes": "+".join(modes)}


def one_pass(a, files, expected, cold, fstype, h2d):
    say = lambda *x: print(*x, file=sys.stderr)  # noqa: E731
    label = "cold" if cold else "warm"
    if cold and fstype in ("tmpfs", "ramfs"):
        say(f"# cold: skipped, the files are on {fstype} (the page cache itself; nothing to evict)")
        return {}
    if not cold:
        warm(files)
        say(f"# warm: files read once before the runs; resident: {resident(files) * 100:.0f}%")
    results = {}
    for name, fn in LOADERS.items():
        if a.only and name not in a.only:
            continue
        if not cold:
            warm(files)  # a cold pass of an earlier loader may have evicted them
        row = {"loader": name, "device": a.device, "pass": label, **run_loader(name, fn, files, a.device, expected, a, cold)}
        results[name] = row
        print(json.dumps(row), flush=True)
    rust = rust_example(a.paths, a.device, cold)
    if rust is not None:
        row = {"loader": "safeweights-load example (Rust, no torch)", "device": a.device, "pass": label, **rust}
        results[row["loader"]] = row
        print(json.dumps(row), flush=True)
    if cold:
        how = evict(files)
        before = resident(files)
        try:
            s, n, mode = disk_read(files, a.disk_threads)
            row = {"loader": f"disk: parallel reads ({a.disk_threads} threads, 16 MiB)", "pass": label, "seconds": s,
                   "gb_per_s": n / s / 1e9, "mode": mode, "evicted_by": how, "resident_before": before}
        except OSError as e:
            row = {"loader": "disk: parallel reads", "pass": label, "skipped": str(e)}
        results["disk"] = row
        print(json.dumps(row), flush=True)
    summary(a, results, label, h2d)
    return results


def summary(a, results, label, h2d):
    say = lambda *x: print(*x, file=sys.stderr)  # noqa: E731
    say(f"\n== {label}, {a.device}: {len(a.files)} file(s), {a.total / 1e9:.2f} GB of tensors")
    say(f"{'':<44} {'GB/s':>8} {'first':>8}  check")
    for r in results.values():
        name = r["loader"]
        if "skipped" in r:
            say(f"{name:<44} skipped: {r['skipped'][:110]}")
            continue
        check = "" if "identical" not in r else ("identical" if r["identical"] else "MISMATCH: " + r["problems"][0][:60])
        first = f"{r['first_gb_per_s']:8.2f}" if "first_gb_per_s" in r else f"{'':>8}"
        extra = ""
        if "resident_before" in r:
            extra = f"  (resident before: {r['resident_before'] * 100:.0f}%; {r.get('evicted_by', '')})"
        if "modes" in r or "mode" in r:
            extra = f"  [{r.get('modes') or r.get('mode')}]" + extra
        say(f"{name:<44} {r['gb_per_s']:8.2f} {first}  {check}{extra}")
    ok = lambda r: r and "gb_per_s" in r and r.get("identical", True)  # noqa: E731
    ours = results.get(SAFEWEIGHTS)
    peers = {k: r for k, r in results.items() if k in LOADERS and k not in OURS and ok(r)}
    if not ok(ours):
        say("no ratio: safeweights load_checkpoint did not run, was skipped, or MISMATCH")
        return
    best = max(peers, key=lambda k: peers[k]["gb_per_s"]) if peers else None
    if best:
        say(f"ratio: safeweights / best peer ({best}) = {ours['gb_per_s'] / peers[best]['gb_per_s']:.2f}x")
    if REFERENCE in peers:
        say(f"ratio: safeweights / reference = {ours['gb_per_s'] / peers[REFERENCE]['gb_per_s']:.2f}x")
    # The goals (bench/gpu/README.md).
    g = ours["gb_per_s"]
    if a.device.startswith("cuda") and label == "warm":
        target = 0.9 * h2d if h2d else 48.0
        basis = f"90% of the {h2d:.1f} GB/s pinned H2D measured here" if h2d else "48 GB/s (90% of 53.5, H100)"
        say(f"goal warm/tmpfs: {g:.2f} GB/s vs {target:.1f} GB/s = {basis}: {'MET' if g >= target else 'NOT MET'}")
    if label == "cold":
        if best:
            say(f"goal cold >= best peer: {'MET' if g >= peers[best]['gb_per_s'] else 'NOT MET'}")
        disk = results.get("disk", {})
        if "gb_per_s" in disk:
            say(f"goal cold within 10% of the disk's parallel reads ({disk['gb_per_s']:.2f} GB/s): "
                f"{g / disk['gb_per_s'] * 100:.0f}% {'MET' if g >= 0.9 * disk['gb_per_s'] else 'NOT MET'}")
    if a.device == "cpu" and label == "warm" and a.memcpy:
        say(f"goal CPU >= 80% of memcpy ({a.memcpy:.2f} GB/s): {g / a.memcpy * 100:.0f}% "
            f"{'MET' if g >= 0.8 * a.memcpy else 'NOT MET'}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="*", help="folder, index or .safetensors files")
    ap.add_argument("--device", default="cuda:0", help="cuda:N or cpu (default cuda:0)")
    ap.add_argument("--runs", type=int, default=3, help="runs per row; the figure is the median "
                    "of runs 2.. (run 1, with one-time setup, is reported as 'first')")
    ap.add_argument("--cold", action="store_true", help="evict the files before each run")
    ap.add_argument("--warm-and-cold", action="store_true", help="a warm pass, then a cold one")
    ap.add_argument("--only", nargs="*", default=None, metavar="ROW", help=f"rows to run: {', '.join(LOADERS)}")
    ap.add_argument("--threads", type=int, default=None, help="safeweights reader threads (default: its own)")
    ap.add_argument("--memory-budget", default=None, help="safeweights staging memory, e.g. 1GiB")
    ap.add_argument("--check", default="8", help="tensors whose bytes are compared (N or 'all'; default 8)")
    ap.add_argument("--check-every-run", action="store_true", help="check every run, not just the first")
    ap.add_argument("--release-pinned", action="store_true",
                    help="free safeweights' kept pinned ring after each run (each run pays pinning)")
    ap.add_argument("--disk-threads", type=int, default=16, help="threads of the disk baseline (default 16)")
    ap.add_argument("--h2d-only", action="store_true", help="only measure the pinned H2D bandwidth")
    ap.add_argument("--dry-run", action="store_true",
                    help="no GPU: --device cpu, 1 run, warm and cold; CUDA-only steps reported as skipped")
    a = ap.parse_args()
    say = lambda *x: print(*x, file=sys.stderr)  # noqa: E731
    if a.dry_run:
        a.device, a.warm_and_cold = "cpu", True
        if "--runs" not in sys.argv:
            a.runs = 1
    d = torch.device(a.device)
    a.device = "cuda:0" if d.type == "cuda" and d.index is None else str(d)
    cuda = a.device.startswith("cuda")
    if cuda:
        if not torch.cuda.is_available():
            raise SystemExit("load_gpu.py: torch sees no CUDA device (use --dry-run or --device cpu without a GPU)")
        torch.cuda.init()
        torch.cuda.set_device(a.device)
        torch.empty(1, device=a.device)  # the context, before any timing

    h2d = None
    if cuda:
        h2d = h2d_gbps(a.device)
        say(f"# pinned H2D (torch, 1 GiB pinned .to({a.device!r}, non_blocking=True), best of 5): "
            f"{h2d:.2f} GB/s; 90% = {0.9 * h2d:.2f} GB/s")
        print(json.dumps({"loader": "pinned H2D copy (torch)", "device": a.device, "gb_per_s": h2d}), flush=True)
    else:
        say("# pinned H2D: skipped (no CUDA device: --device cpu)")
    if a.h2d_only:
        return
    if not a.paths:
        ap.error("no checkpoint given")

    a.files = discover(a.paths)
    expected = Expected(a.files, a.check)
    a.total = expected.bytes
    fstype = storage(a.files[0])[1]
    info = machine(a.device, a.files[0])
    say("# machine")
    for k, v in info.items():
        say(f"#   {k:<12} {v}")
    print(json.dumps({"machine": info}), flush=True)
    say(f"# checkpoint: {len(a.files)} file(s), {len(expected.meta)} tensors, {a.total / 1e9:.2f} GB; "
        f"byte check on {len(expected.sample)} tensor(s)")
    a.memcpy = None
    if a.device == "cpu":
        a.memcpy = memcpy_gbps()
        say(f"# memcpy (torch copy_, {torch.get_num_threads()} threads, 1 GiB): {a.memcpy:.2f} GB/s")
    passes = [False, True] if a.warm_and_cold else [a.cold]
    for cold in passes:
        one_pass(a, a.files, expected, cold, fstype, h2d)
    if a.dry_run:
        say("\n# dry run done: every row ran or said why it was skipped (no GPU was used)")


if __name__ == "__main__":
    main()
