#!/usr/bin/env bash
# GPU checks and benchmark for safeweights-load. UNTESTED here (no GPU on the
# development machine); run on a CUDA machine from the repository root:
#   bash bench/gpu/run_gpu.sh [GB]
# Needs: cargo, a CUDA driver, libcudart (system, or pip nvidia-cuda-runtime:
# set SAFEWEIGHTS_CUDART to its path), Python with torch + safetensors; the
# other peers (fastsafetensors, instanttensor, runai-model-streamer) are used
# when installed.
set -euo pipefail
GB=${1:-8}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
PY=${SAFEWEIGHTS_PYTHON:-python3}
if [ -z "${SAFEWEIGHTS_CUDART:-}" ]; then
  found=$("$PY" - <<'P' 2>/dev/null || true
import glob, os, site
for d in site.getsitepackages():
    for p in glob.glob(os.path.join(d, "nvidia", "**", "libcudart.so*"), recursive=True):
        print(p); raise SystemExit
P
)
  [ -n "$found" ] && export SAFEWEIGHTS_CUDART="$found"
fi
echo "libcudart: ${SAFEWEIGHTS_CUDART:-system default}"

# 1. Correctness on the GPU: byte-identity of every tensor (all I/O modes,
#    10k-ish small tensors, a huge one, a TP slice) against the file.
cargo test --release -p safeweights-load -- --nocapture cuda

# 2. Checkpoints: the CPU benchmark writes them (and prints CPU figures).
DISK=${DISK_DIR:-/var/tmp/safeweights-bench-load}
cargo run --release -p safeweights-bench --bin load -- --dir "$DISK" --gb "$GB" --runs 3
LLAMA="$DISK/llama-${GB}gb"
MOE="$DISK/moe-10k-x"

# 3. The same checkpoints on tmpfs (/dev/shm), where O_DIRECT is refused and
#    the engine must fall back to buffered reads (reported per file).
SHM=/dev/shm/safeweights-bench-load
mkdir -p "$SHM" && cp -r "$LLAMA" "$MOE" "$SHM/"

cargo build --release -p safeweights-load --example load
export SAFEWEIGHTS_LOAD_EXAMPLE="$CARGO_TARGET_DIR/release/examples/load"
for ckpt in "$LLAMA" "$MOE" "$SHM/$(basename "$LLAMA")" "$SHM/$(basename "$MOE")"; do
  echo "== $ckpt"
  for t in 4 8 16; do
    echo "rust engine warm, $t threads: $("$SAFEWEIGHTS_LOAD_EXAMPLE" "$ckpt" --device cuda:0 --threads $t)"
  done
  echo "rust engine cold: $("$SAFEWEIGHTS_LOAD_EXAMPLE" "$ckpt" --device cuda:0 --cold)"
  "$PY" bench/gpu/load_gpu.py "$ckpt" --device cuda:0 --runs 3
  case "$ckpt" in /dev/shm/*) ;; *) "$PY" bench/gpu/load_gpu.py "$ckpt" --device cuda:0 --runs 3 --cold ;; esac
done
rm -rf "$SHM"
