"""Benchmark: `safeweights scan` against picklescan and modelscan, in the same run.

    python3 bench/scan.py [--gb 3] [--work /tmp/sw-scan-bench] [--runs 3]
                          [--bin PATH] [--tree SRC] [--out bench/results/scan.txt]

Two parts:

1. Speed on a folder of large benign checkpoints, written by the real
   libraries (`--torch-python`, default .venv/bin/python, needs torch and
   safetensors): a PyTorch zip checkpoint (about half of --gb, 41 tensors,
   fp32 + bf16), a legacy-format (`_use_new_zipfile_serialization=False`)
   `pytorch_model.bin` and a `model.safetensors` (a quarter each). Each
   scanner scans the whole folder: `safeweights scan --format json DIR`,
   `picklescan --path DIR`, `modelscan -p DIR -r json -o FILE`. Warm page
   cache (every file read once first, then one untimed run per tool), then
   --runs timed runs each; the median wall time is reported. Then one "cold"
   run each after evicting only these files from the page cache
   (fsync + posix_fadvise(DONTNEED), nothing machine-wide): its time, and the
   bytes the process read from disk (ru_inblock * 512 from wait4, so
   including kernel readahead), and the same for each file alone.

2. Detections on the crafted corpus, side by side: the example
   crates/safeweights-scan/examples/dump_corpus.rs writes one file per
   distinct technique of the scanner's corpus (crates/safeweights-scan/tests/common/cases.rs) with a
   manifest that labels each `attack` or `suspect` (see that file); the benign
   side is the real files of tests/fixtures (torch zip, torch legacy, npy,
   npz, safetensors) plus the three large checkpoints of part 1. Each tool
   scans each file on its own. How a verdict is derived:
     - safeweights: exit code of `scan --format json FILE` (1: a finding at or
       above the default --fail-on medium, 0: none, 2: error); the cell shows
       the highest severity from the JSON report.
     - picklescan: its summary text. "flag" when `Dangerous globals: N` has
       N > 0 (its exit code is 2 instead of 1 when a scan error also
       happened, so the code alone is not enough); else "error" when it
       printed an error or exited 2; else "skip" when `Scanned files: 0`
       (its scanners are chosen by file extension); else "clean" (with
       "+susp" when it counted suspicious globals, which it does not treat
       as a detection in its default, non --strict mode).
     - modelscan: its JSON report (-r json -o FILE). "flag" when `issues` is
       non-empty (cell: the highest severity); else "error" when `errors` is
       non-empty; else "skip" when nothing was scanned; else "clean". Its exit
       code (0 clean, 1 issues, 2 errors, 3 nothing scanned) is the fallback
       if no report was written.
   Totals: attacks detected out of N ("error"/"skip" count as missed), suspect
   files flagged out of M, false alarms (flag on a benign file) out of B.

Peers run from their own virtual environment, bench/.venv-scan (git-ignored),
created and filled with `pip install picklescan modelscan h5py "numpy<2"` when
missing (h5py lets modelscan's HDF5 scanner run; numpy<2 because modelscan's
.npy scanner uses a numpy 1.x private function; its Keras scanner needs
`modelscan[tensorflow]`, about 600 MB, not installed: it reports a dependency
error on .keras files, shown as "error"). safeweights is built here with
cargo (release, honouring CARGO_TARGET_DIR) unless --bin is given.

Needs: cargo, python3 (venv, pip, network for the first install), a Python
with torch and safetensors for the checkpoints, /proc, ~2x --gb of free disk
under --work. No file is ever loaded or unpickled by this script; the
scanners only parse.
"""
import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV = os.path.join(HERE, ".venv-scan")
# numpy<2: modelscan 0.8.8 asks for numpy>=1.24.3 but its .npy scanner calls
# numpy.lib.format._check_version, gone from that module in numpy 2.x (every
# .npy/.npz would be a scan error); picklescan does not use numpy.
PEER_PACKAGES = ["picklescan", "modelscan", "h5py", "numpy<2"]
PEER_NAMES = ["picklescan", "modelscan", "h5py", "numpy"]
FIXTURES = os.path.join(ROOT, "crates", "safeweights-scan", "tests", "fixtures")
BENIGN_FIXTURES = ["torch_zip.pt", "torch_legacy.pt", "numpy_float.npy",
                   "numpy_arrays.npz", "model.safetensors"]

OUT_LINES = []


def say(*a):
    line = " ".join(str(x) for x in a)
    print(line, flush=True)
    OUT_LINES.append(line)


# ---------------------------------------------------------------- setup

def ensure_peers():
    """Creates bench/.venv-scan with the peers when missing; returns versions."""
    py = os.path.join(VENV, "bin", "python")
    ok = os.path.exists(py) and subprocess.run(
        [py, "-c", "import picklescan, modelscan, h5py, numpy; assert numpy.__version__ < '2'"],
        capture_output=True).returncode == 0
    if not ok:
        print(f"installing {' '.join(PEER_PACKAGES)} into {VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q"] + PEER_PACKAGES, check=True)
    code = ("import importlib.metadata as m, json, sys; print(json.dumps("
            "{p: m.version(p) for p in sys.argv[1:]}))")
    out = subprocess.run([py, "-c", code] + PEER_NAMES, check=True,
                         capture_output=True, text=True).stdout
    versions = json.loads(out)
    versions["python"] = subprocess.run([py, "-c", "import platform; print(platform.python_version())"],
                                        capture_output=True, text=True).stdout.strip()
    return versions


def target_dir():
    return os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


def build_safeweights(tree):
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "safeweights-cli"],
                   cwd=tree, check=True)
    return os.path.join(target_dir(), "release", "safeweights")


def dump_corpus(dest, tree):
    if os.path.exists(dest):
        shutil.rmtree(dest)
    subprocess.run(["cargo", "run", "--release", "-q", "-p", "safeweights-scan",
                    "--example", "dump_corpus", "--", dest], cwd=tree, check=True)
    with open(os.path.join(dest, "manifest.json")) as f:
        return json.load(f)


GEN = r"""
import sys, torch
from safetensors.torch import save_file
out, gb = sys.argv[1], float(sys.argv[2])
g = torch.Generator().manual_seed(0)
def mat(r, c, dt=torch.float32):
    return torch.empty(r, c, dtype=dt).uniform_(-1, 1, generator=g)
def layers(prefix, nbytes, first=0):
    sd, i, n = {}, first, 0
    while n < nbytes:
        sd[f"{prefix}.{i}.mlp.up_proj.weight"] = mat(4096, 4096)
        sd[f"{prefix}.{i}.input_layernorm.weight"] = torch.ones(4096)
        n += 4096 * 4096 * 4 + 4096 * 4
        i += 1
    return sd
# half: zip checkpoint with a bf16 embedding, tied lm_head, a transposed view
emb = mat(32000, 4096, torch.bfloat16)
sd = {"model.embed_tokens.weight": emb, "lm_head.weight": emb}
sd.update(layers("model.layers", gb * 0.5e9 - emb.numel() * 2))
sd["model.layers.0.mlp.up_proj.weight"] = sd["model.layers.0.mlp.up_proj.weight"].t()
torch.save(sd, f"{out}/model-zip.pt")
del sd, emb
# a quarter: legacy (pre-1.6) serialization
torch.save(layers("model.layers", gb * 0.25e9), f"{out}/pytorch_model.bin",
           _use_new_zipfile_serialization=False)
# a quarter: safetensors
save_file(layers("model.layers", gb * 0.25e9), f"{out}/model.safetensors")
"""


def make_checkpoints(dest, gb, torch_python):
    stamp = os.path.join(dest, ".stamp")
    want = f"v1 {gb}"
    if os.path.exists(stamp) and open(stamp).read() == want:
        return
    if os.path.exists(dest):
        shutil.rmtree(dest)
    os.makedirs(dest)
    print(f"writing {gb} GB of checkpoints to {dest} ...", flush=True)
    subprocess.run([torch_python, "-c", GEN, dest, str(gb)], check=True)
    with open(stamp, "w") as f:
        f.write(want)


def files_under(d):
    return sorted(os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs
                  if not f.startswith("."))


def read_all(paths):
    for p in paths:
        with open(p, "rb") as f:
            while f.read(1 << 24):
                pass


def evict(paths):
    """Drops these files (only) from the page cache."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def read_ahead_kb(path):
    """read_ahead_kb of the block device holding path, or None."""
    st = os.stat(path)
    base = f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    for q in (f"{base}/queue/read_ahead_kb", f"{base}/../queue/read_ahead_kb"):
        try:
            return int(open(q).read())
        except (OSError, ValueError):
            pass
    return None


def machine():
    cpu = "?"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = 0
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal"):
            mem = int(line.split()[1]) * 1024
    return f"{cpu}, {os.cpu_count()} cores, {mem / 2**30:.1f} GiB RAM, Linux {platform.release()}"


# ---------------------------------------------------------------- running

def measure(cmd, cwd):
    """Runs cmd; returns (wall s, exit code, stdout+stderr text, bytes read
    from disk, peak RSS bytes) of that child, from wait4's rusage. (The peak
    RSS is not reported: the child is forked from this Python process and
    the high-water mark survives exec.)"""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    p.stdout.close()
    return wall, p.returncode, out.decode(errors="replace"), ru.ru_inblock * 512, ru.ru_maxrss * 1024


def tools(sw_bin, tmp):
    vb = os.path.join(VENV, "bin")
    report = os.path.join(tmp, "modelscan.json")
    return {
        "safeweights": lambda path: [sw_bin, "scan", "--format", "json", path],
        "picklescan": lambda path: [os.path.join(vb, "picklescan"), "--path", path],
        "modelscan": lambda path: [os.path.join(vb, "modelscan"), "-p", path,
                                   "-r", "json", "-o", report],
    }, report


SEV_ORDER = ["info", "low", "medium", "high", "critical"]


def verdict_safeweights(rc, out, _report):
    if rc == 2:
        return "error"
    try:
        highest = json.loads(out)["summary"]["highest"]
    except (ValueError, KeyError):
        highest = None
    if rc == 1:
        return f"flag:{highest}"
    return "clean" if highest in (None, "info") else f"clean({highest})"


def verdict_picklescan(rc, out, _report):
    def count(label):
        m = re.search(rf"^{label}: (\d+)", out, re.M)
        return int(m.group(1)) if m else None
    dangerous = count("Dangerous globals")
    scanned = count("Scanned files")
    suspicious = count("Suspicious globals") or 0
    if (dangerous or 0) > 0:
        return "flag"
    if rc == 2 or re.search(r"^ERROR|Traceback", out, re.M):
        return "error"
    if scanned == 0:
        return "skip"
    if dangerous is None:
        return f"rc={rc}?"
    return "clean+susp" if suspicious else "clean"


def verdict_modelscan(rc, _out, report):
    try:
        with open(report) as f:
            r = json.load(f)
    except (OSError, ValueError):
        return {0: "clean", 1: "flag", 2: "error", 3: "skip"}.get(rc, f"rc={rc}?")
    issues = r.get("issues") or []
    if issues:
        sev = max((i.get("severity", "").lower() for i in issues),
                  key=lambda s: SEV_ORDER.index(s) if s in SEV_ORDER else -1)
        return f"flag:{sev}"
    if r.get("errors"):
        return "error"
    if not r.get("summary", {}).get("scanned", {}).get("total_scanned"):
        return "skip"
    return "clean"


VERDICT = {"safeweights": verdict_safeweights, "picklescan": verdict_picklescan,
           "modelscan": verdict_modelscan}


def run_tool(name, cmd, report, cwd):
    if os.path.exists(report):
        os.remove(report)
    wall, rc, out, inb, rss = measure(cmd, cwd)
    return wall, rc, out, inb, rss, VERDICT[name](rc, out, report)


# ---------------------------------------------------------------- main

def fmt_bytes(n):
    for unit in ["B", "KiB", "MiB", "GiB"]:
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gb", type=float, default=3.0, help="total size of the large checkpoints")
    ap.add_argument("--work", default="/tmp/sw-scan-bench", help="scratch folder (checkpoints kept between runs)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bin", help="safeweights binary (default: cargo build --release in --tree)")
    ap.add_argument("--tree", default=ROOT,
                    help="source tree the binary and the corpus dumper are built from (default: this checkout; "
                         "e.g. a `git archive HEAD` export when the checkout is mid-edit)")
    ap.add_argument("--torch-python", default=os.path.join(ROOT, ".venv", "bin", "python"))
    ap.add_argument("--out", help="also write the report to this file")
    args = ap.parse_args()

    os.makedirs(args.work, exist_ok=True)
    versions = ensure_peers()
    sw_bin = args.bin or build_safeweights(args.tree)
    sw_version = subprocess.run([sw_bin, "--version"], capture_output=True, text=True).stdout.strip()
    ckpt = os.path.join(args.work, "checkpoints")
    make_checkpoints(ckpt, args.gb, args.torch_python)
    corpus = os.path.join(args.work, "corpus")
    manifest = dump_corpus(corpus, args.tree)
    benign_dir = os.path.join(corpus, "benign")
    os.makedirs(benign_dir)
    for f in BENIGN_FIXTURES:
        shutil.copy(os.path.join(FIXTURES, f), benign_dir)
    tmp = os.path.join(args.work, "tmp")  # cwd of the peers: no settings file there
    os.makedirs(tmp, exist_ok=True)
    cmds, report = tools(sw_bin, tmp)

    say("# safeweights scan vs picklescan vs modelscan")
    say()
    say(f"machine: {machine()}")
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                          capture_output=True, text=True).stdout.strip()
    say(f"safeweights: {sw_version} ({sw_bin}, built from {args.tree}; checkout at {head})")
    say(f"peers (bench/.venv-scan, Python {versions['python']}): picklescan {versions['picklescan']}, "
        f"modelscan {versions['modelscan']} (h5py {versions['h5py']}, numpy {versions['numpy']}; no tensorflow)")
    say(f"command: python3 bench/scan.py {' '.join(sys.argv[1:])}".rstrip())

    # ---- part 1: speed on large checkpoints
    big = files_under(ckpt)
    total = sum(os.path.getsize(p) for p in big)
    say()
    say(f"## 1. Scanning a folder of large checkpoints ({fmt_bytes(total)}, {len(big)} files)")
    say()
    for p in big:
        say(f"  {os.path.basename(p):<20} {fmt_bytes(os.path.getsize(p)):>10}")
    read_all(big)
    warm, cold, verdicts = {}, {}, {}
    for name, mk in cmds.items():
        cmd = mk(ckpt)
        run_tool(name, cmd, report, tmp)  # untimed warm-up
        walls = []
        for _ in range(args.runs):
            wall, rc, out, inb, rss, v = run_tool(name, cmd, report, tmp)
            walls.append(wall)
        warm[name] = (statistics.median(walls), walls, v)
    for name, mk in cmds.items():
        evict(big)
        wall, rc, out, inb, rss, v = run_tool(name, mk(ckpt), report, tmp)
        cold[name] = (wall, inb)
    read_all(big)
    # context: what the peers pay before scanning anything
    pyw = sorted(measure([os.path.join(VENV, "bin", "python"), "-c", "pass"], tmp)[0]
                 for _ in range(args.runs))[args.runs // 2]
    sw = warm["safeweights"][0]
    say()
    say(f"warm page cache, median of {args.runs} (all runs, s); cold: one run after evicting these files")
    say()
    say(f"{'tool':<12} {'warm s':>8} {'runs':<24} {'vs safeweights':>15} "
        f"{'cold s':>8} {'read from disk':>15}  verdict")
    for name in cmds:
        med, walls, v = warm[name]
        ratio = "1.0x" if name == "safeweights" else f"{med / sw:.1f}x slower"
        runs = " ".join(f"{w:.3f}" for w in walls)
        say(f"{name:<12} {med:>8.3f} {runs:<24} {ratio:>15} "
            f"{cold[name][0]:>8.3f} {fmt_bytes(cold[name][1]):>15}  {v}")
    say(f"(cold 'read from disk' includes kernel readahead: read_ahead_kb={read_ahead_kb(ckpt)} "
        f"on the device holding {ckpt}; a memory-mapped read faults in up to that much around each page touched)")
    # where the cold bytes go: each file alone, evicted first
    say()
    say("cold, each file scanned alone after evicting it: wall s / read from disk")
    say(f"{'file':<20} " + " ".join(f"{n:>24}" for n in cmds))
    for p in big:
        cells = []
        for name, mk in cmds.items():
            evict([p])
            wall, _, _, inb, _, _ = run_tool(name, mk(p), report, tmp)
            cells.append(f"{wall:.3f} s / {fmt_bytes(inb)}")
        say(f"{os.path.basename(p):<20} " + " ".join(f"{c:>24}" for c in cells))
    read_all(big)
    say()
    say(f"(for context: the peers' Python interpreter starting and exiting, `python -c pass`: {pyw:.3f} s)")

    # ---- part 2: detections
    rows = [(m["file"], m["label"], os.path.join(corpus, m["file"])) for m in manifest]
    rows += [(f"benign/{f}", "benign", os.path.join(benign_dir, f)) for f in BENIGN_FIXTURES]
    rows += [(f"checkpoints/{os.path.basename(p)}", "benign", p) for p in big]
    results = {}
    for file, label, path in rows:
        results[file] = {name: run_tool(name, mk(path), report, tmp)[5] for name, mk in cmds.items()}

    say()
    say(f"## 2. Detections, one file at a time ({len(manifest)} crafted files from the scanner's corpus, "
        f"{len(rows) - len(manifest)} benign real files)")
    say()
    say("attack: loading/extracting it runs attacker-chosen code or reaches outside the folder; "
        "suspect: crafted anomaly without a working payload (flagged by safeweights by design, "
        "counted apart); benign: written by torch/numpy/safetensors.")
    say()
    w = max(len(r[0]) for r in rows)
    say(f"{'file':<{w}} {'expected':<8} {'safeweights':<15} {'picklescan':<12} {'modelscan':<15}")
    for file, label, _ in rows:
        r = results[file]
        say(f"{file:<{w}} {label:<8} {r['safeweights']:<15} {r['picklescan']:<12} {r['modelscan']:<15}")

    say()
    say("## Totals")
    say()
    counts = {lab: sum(1 for r in rows if r[1] == lab) for lab in ("attack", "suspect", "benign")}
    say(f"{'':<34} {'safeweights':>12} {'picklescan':>12} {'modelscan':>12}")

    def line(title, label, pred):
        cells = [sum(1 for f, lab, _ in rows if lab == label and pred(results[f][n])) for n in cmds]
        say(f"{title:<34} " + " ".join(f"{c:>9}/{counts[label]:<2}" for c in cells))
    flagged = lambda v: v.startswith("flag")
    line("attacks detected", "attack", flagged)
    line("  attacks: scan error", "attack", lambda v: v == "error")
    line("  attacks: skipped (not scanned)", "attack", lambda v: v == "skip")
    line("suspect files flagged", "suspect", flagged)
    line("false alarms on benign files", "benign", flagged)
    line("  benign: scan error", "benign", lambda v: v == "error")
    say()
    say("Verdicts: safeweights by exit code at the default --fail-on medium (cell: highest severity); "
        "picklescan by 'Dangerous globals: N' > 0 (error: exit 2 / ERROR printed; skip: 'Scanned files: 0'); "
        "modelscan by its JSON report's issues (error: errors only; skip: nothing scanned). "
        "See the top of bench/scan.py.")
    say()
    say("Notes on the crafted files: h5-lambda.h5 is the HDF5 signature plus the model_config text, not a "
        "valid HDF5 file (h5py cannot open it, so modelscan reports an error); keras-lambda.keras holds a "
        "real config.json, but modelscan's Keras scanner needs modelscan[tensorflow] (not installed here). "
        "picklescan and modelscan pick their scanners by file extension; safeweights reads the bytes.")

    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(OUT_LINES) + "\n")


if __name__ == "__main__":
    main()
