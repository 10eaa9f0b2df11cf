#!/usr/bin/env bash
# GPU checks and benchmark for safeweights-load, on a CUDA machine.
#
#   bash bench/gpu/run_gpu.sh [GB]        # default 8: an 8 GB Llama-like checkpoint + a 10,000-tensor MoE
#
# Runs from the kit that bench/gpu/build_kit.sh made on a machine with Rust
# (the GPU machine needs no Rust toolchain and no network): the kit is the
# folder this script is in (KIT/bench/gpu/run_gpu.sh), or $SAFEWEIGHTS_KIT, or
# target/gpu-kit of the repository this script is in. Without a kit, or with
# USE_CARGO=1, it builds with cargo instead (a machine with Rust).
#
# Needs: a CUDA driver; a Python ($SAFEWEIGHTS_PYTHON, else python3) with
# torch (CUDA) and safetensors 0.8; fastsafetensors, instanttensor and
# runai-model-streamer are compared when installed (else reported skipped).
#
# Environment:
#   SAFEWEIGHTS_PYTHON  the Python that has torch (default python3)
#   VENV                where the venv with the kit's wheel goes (default
#                       /tmp/safeweights-gpu-venv; it sees $SAFEWEIGHTS_PYTHON's
#                       packages)
#   DISK_DIR            where the checkpoints are written: put it on the NVMe
#                       to measure (default /var/tmp/safeweights-bench-load)
#   OUT                 results folder (default ./gpu-results-DATE)
#   SAFEWEIGHTS_CUDART  libcudart for the engine (default: the one torch loaded)
#   RUNS                runs per row (default 3)
#   DRY_RUN=1           no GPU: every step on --device cpu (CUDA steps say
#                       skipped), to prove the kit and the scripts on a machine
#                       without one, e.g. DRY_RUN=1 bash run_gpu.sh 0.3
set -euo pipefail
GB=${1:-8}
RUNS=${RUNS:-3}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
PY=${SAFEWEIGHTS_PYTHON:-python3}
OUT=${OUT:-$PWD/gpu-results-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LOG=$OUT/run.log
exec > >(tee -a "$LOG") 2>&1
step() { printf '\n==> %s\n' "$*"; }
die() { echo "run_gpu: $*"; exit 1; }
failed=()
DRY=${DRY_RUN:-0}
DEV=cuda:0
[ "$DRY" = 1 ] && DEV=cpu

# --- 0. Where the binaries and the Python package come from ------------------
KIT=${SAFEWEIGHTS_KIT:-}
if [ -z "$KIT" ]; then
  if [ -x "$top/bin/safeweights" ]; then KIT=$top
  elif [ -x "$top/target/gpu-kit/bin/safeweights" ]; then KIT=$top/target/gpu-kit
  fi
fi
if [ -n "$KIT" ] && [ "${USE_CARGO:-0}" != 1 ]; then
  MODE=kit
  [ -x "$KIT/bin/safeweights" ] || die "$KIT is not a kit (no bin/safeweights)"
  step "kit: $KIT"
  sed -n '1,8p' "$KIT/MANIFEST"
  need=$(sed -n 's/^glibc: *needs >= \([0-9.]*\).*/\1/p' "$KIT/MANIFEST")
  have=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}'); have=${have:-unknown}
  if [ -n "$need" ] && [ "$(printf '%s\n%s\n' "$need" "$have" | sort -t. -k1,1n -k2,2n | head -1)" != "$need" ]; then
    die "the kit needs glibc >= $need, this machine has $have: rebuild it with KIT_GLIBC=$have"
  fi
  (cd "$KIT" && sha256sum --quiet -c <(sed -n '/^[0-9a-f]\{64\}  /p' MANIFEST)) || die "kit files differ from MANIFEST"
  SW=$KIT/bin/safeweights
  EXAMPLE=$KIT/bin/load-example
  BENCH=$KIT/bin/bench-load
  TESTS=("$KIT"/tests/*)
  WHEEL=$(ls "$KIT"/wheels/safeweights-*.whl | head -1)
  PEER_SCRIPT=$(sed -n 's/^bench_peer_script=//p' "$KIT/MANIFEST")
else
  MODE=cargo
  command -v cargo >/dev/null || die "no kit found and no cargo: build the kit (bench/gpu/build_kit.sh) where Rust is, and carry it here"
  step "cargo build (no kit): $top"
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$top/target}
  (cd "$top" && cargo build --release -p safeweights-cli --bin safeweights \
    && cargo build --release -p safeweights-load --example load \
    && cargo build --release -p safeweights-bench --bin load)
  SW=$CARGO_TARGET_DIR/release/safeweights
  EXAMPLE=$CARGO_TARGET_DIR/release/examples/load
  BENCH=$CARGO_TARGET_DIR/release/load
  TESTS=()
  WHEEL=
  if command -v maturin >/dev/null; then
    (cd "$top/python" && maturin build --release --out "$OUT/wheels")
    WHEEL=$(ls "$OUT"/wheels/safeweights-*.whl | head -1)
  fi
  PEER_SCRIPT=$top/bench/peers/reference_load.py
fi
export SAFEWEIGHTS_LOAD_EXAMPLE=$EXAMPLE

# --- 1. A venv with the wheel that sees the Python that has torch ------------
step "Python: $PY"
"$PY" -c 'import torch, safetensors; print("torch", torch.__version__, "CUDA", torch.version.cuda, "available:", torch.cuda.is_available()); print("safetensors", safetensors.__version__)' ||
  die "$PY cannot import torch and safetensors (set SAFEWEIGHTS_PYTHON)"
VENV=${VENV:-${TMPDIR:-/tmp}/safeweights-gpu-venv}
if [ -n "$WHEEL" ]; then
  "$PY" -m venv --system-site-packages "$VENV" || die "$PY -m venv failed (Debian/Ubuntu: apt install python3-venv, or point SAFEWEIGHTS_PYTHON at another Python)"
  # --system-site-packages shows the base interpreter's packages only; when
  # $PY is itself a venv or conda env, a .pth adds its site-packages too.
  vsite=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  "$PY" -c 'import site, sys; print("\n".join(p for p in site.getsitepackages() + [site.getusersitepackages()]))' >"$vsite/zz-parent-site.pth"
  "$VENV/bin/python" -m pip install -q --no-deps --no-index --force-reinstall "$WHEEL" ||
    die "pip could not install $WHEEL into $VENV"
  VPY=$VENV/bin/python
else
  VPY=$PY
fi
"$VPY" -c 'import safeweights, torch, os; print("safeweights", safeweights.__version__, "from", os.path.dirname(safeweights.__file__))' ||
  die "safeweights is not importable by $VPY"
export SAFEWEIGHTS_PYTHON=$VPY

# --- 2. libcudart for the engine, and the engine reaching the GPU ------------
step "CUDA"
if [ "$DRY" = 1 ]; then
  echo "DRY_RUN=1: skipped (no GPU is used)"
else
nvidia-smi || echo "(nvidia-smi failed)"
if [ -z "${SAFEWEIGHTS_CUDART:-}" ]; then
  # The libcudart that torch itself loaded (same runtime, known to work with
  # this driver); else pip's nvidia/**/libcudart.so*; else the system's.
  SAFEWEIGHTS_CUDART=$("$VPY" - <<'P' 2>/dev/null || true
import glob, os, sys
import torch
torch.cuda.init()
for line in open("/proc/self/maps"):
    p = line.split()[-1]
    if "/libcudart.so" in p and os.path.exists(p):
        print(p); sys.exit()
for d in sys.path:
    for p in sorted(glob.glob(os.path.join(d, "nvidia", "**", "libcudart.so*"), recursive=True)):
        print(p); sys.exit()
P
)
  [ -n "$SAFEWEIGHTS_CUDART" ] && export SAFEWEIGHTS_CUDART || unset SAFEWEIGHTS_CUDART
fi
echo "libcudart: ${SAFEWEIGHTS_CUDART:-system default (libcudart.so, .so.13, .so.12, .so.11.0)}"
# fastsafetensors dlopens plain "libcudart.so", which pip's CUDA wheels do not
# ship: without a CUDA toolkit it would be skipped. Give it the runtime torch uses.
if [ -n "${SAFEWEIGHTS_CUDART:-}" ] && ! ldconfig -p 2>/dev/null | grep -q 'libcudart\.so '; then
  mkdir -p "$OUT/lib" && ln -sf "$SAFEWEIGHTS_CUDART" "$OUT/lib/libcudart.so"
  export LD_LIBRARY_PATH="$OUT/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "libcudart.so for fastsafetensors: $OUT/lib/libcudart.so -> $SAFEWEIGHTS_CUDART"
fi
"$VPY" - <<'P' || die "the safeweights engine cannot reach CUDA: the GPU numbers would be CPU loads moved with .to(); set SAFEWEIGHTS_CUDART"
import torch
from safeweights._safeweights import _cuda_status
ok, detail = _cuda_status()
print("engine CUDA:", ok, detail)
assert ok and torch.cuda.is_available()
P
fi

# --- 3. Correctness on the GPU ------------------------------------------------
step "tests: safeweights-load, release (the GPU test returns early without CUDA: step 2 made sure it is reachable, but for DRY_RUN=1)"
if [ "$MODE" = kit ]; then
  for t in "${TESTS[@]}"; do
    echo "-- $(basename "$t")"
    (cd "$OUT" && timeout 1800 "$t" 2>&1 | tail -n 25) || failed+=("test $(basename "$t")")
  done
  # The GPU test again, on its own and verbosely.
  for t in "${TESTS[@]}"; do
    if "$t" --list 2>/dev/null | grep -q '^cuda_load_is_byte_identical_when_a_gpu_is_present:'; then
      (cd "$OUT" && timeout 600 "$t" --exact cuda_load_is_byte_identical_when_a_gpu_is_present --nocapture) ||
        failed+=("GPU byte-identity test")
    fi
  done
else
  (cd "$top" && cargo test --release -p safeweights-load) || failed+=("cargo test -p safeweights-load")
fi

# --- 4. Pinned host-to-device bandwidth: what 90% is measured against --------
step "pinned H2D bandwidth (torch)"
"$VPY" "$here/load_gpu.py" --h2d-only --device "$DEV" | tee "$OUT/h2d.json" || failed+=("h2d")

# --- 5. Checkpoints, and the CPU figures -------------------------------------
DISK=${DISK_DIR:-/var/tmp/safeweights-bench-load}
step "checkpoints in $DISK (write once) + CPU load figures vs memcpy"
peer=()
[ -f "$PEER_SCRIPT" ] || { peer=(--no-peer); echo "(CPU reference peer script $PEER_SCRIPT absent here: --no-peer; load_gpu.py --device cpu below compares instead)"; }
"$BENCH" --dir "$DISK" --gb "$GB" --runs "$RUNS" "${peer[@]}" | tee "$OUT/cpu-bench.txt" || failed+=("bench-load")
LLAMA="$DISK/llama-${GB}gb"
MOE="$DISK/moe-10k-x"
[ -d "$LLAMA" ] && [ -d "$MOE" ] || die "the checkpoints were not written"

# --- 6. The same checkpoints on tmpfs ------------------------------------------
SHM=/dev/shm/safeweights-bench-load
need_kb=$(du -sk "$LLAMA" "$MOE" | awk '{s += $1} END {print s}')
free_kb=$(df -k --output=avail /dev/shm | tail -1)
ckpts=("$LLAMA" "$MOE")
if [ "$free_kb" -gt $((need_kb + 1048576)) ]; then
  mkdir -p "$SHM" && cp -r "$LLAMA" "$MOE" "$SHM/"
  ckpts+=("$SHM/$(basename "$LLAMA")" "$SHM/$(basename "$MOE")")
else
  echo "(/dev/shm has ${free_kb} KiB free, ${need_kb} KiB needed: tmpfs runs skipped)"
fi
trap 'rm -rf "$SHM"' EXIT

# --- 7. Per checkpoint: the Rust engine alone, then every loader --------------
# load_gpu.py: rows (JSON) to NAME.jsonl; table, ratios, goals to NAME.txt and the log.
bench() {
  local name=$1; shift
  "$VPY" "$here/load_gpu.py" "$@" 2>&1 >"$OUT/$name.jsonl" | tee "$OUT/$name.txt"
}
i=0
for ckpt in "${ckpts[@]}"; do
  i=$((i + 1))
  tag=$(basename "$ckpt"); case "$ckpt" in /dev/shm/*) tag="tmpfs-$tag" ;; *) tag="disk-$tag" ;; esac
  step "$ckpt"
  for t in 4 8 16; do
    echo "rust engine warm, $t threads: $("$EXAMPLE" "$ckpt" --device "$DEV" --threads $t)" | tee -a "$OUT/$tag-rust.jsonl"
  done
  case "$ckpt" in /dev/shm/*) ;; *)
    echo "rust engine cold: $("$EXAMPLE" "$ckpt" --device "$DEV" --cold)" | tee -a "$OUT/$tag-rust.jsonl" ;;
  esac
  "$SW" load "$ckpt" --device "$DEV" || failed+=("safeweights load $tag")
  if [ "$DRY" = 1 ]; then
    bench "$tag-dry" "$ckpt" --dry-run --check all || failed+=("load_gpu $tag dry run")
    continue
  fi
  # Warm (every tensor's bytes checked), then cold (not on tmpfs).
  bench "$tag-warm" "$ckpt" --device cuda:0 --runs "$RUNS" --check all || failed+=("load_gpu $tag warm")
  case "$ckpt" in /dev/shm/*) ;; *)
    bench "$tag-cold" "$ckpt" --device cuda:0 --runs "$RUNS" --cold || failed+=("load_gpu $tag cold") ;;
  esac
done

# The CPU destination against memcpy, from tmpfs when there is one.
cpu_ckpt=${ckpts[2]:-$LLAMA}
step "CPU destination: $cpu_ckpt"
bench cpu-warm "$cpu_ckpt" --device cpu --runs "$RUNS" || failed+=("load_gpu cpu")

if [ "$DRY" != 1 ]; then
  step "nvidia-smi after the runs (memory back at baseline?)"
  nvidia-smi --query-gpu=memory.used,memory.total --format=csv || true
fi

step "summary"
(cd "$OUT" && grep -E '^(ratio|goal)|MISMATCH|WARNING' -- *.txt) || true
echo "results: $OUT (bring this folder back)"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
echo "all steps ran"
