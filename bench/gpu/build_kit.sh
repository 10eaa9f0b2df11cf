#!/usr/bin/env bash
# Builds, HERE (a machine with the Rust toolchain), everything Rust that the
# GPU benchmark needs, into one folder to carry to the GPU machine, which has
# CUDA, Python and torch but no Rust toolchain and no network:
#
#   bin/safeweights               the CLI (crate safeweights-cli, release)
#   bin/load-example              examples/load.rs of safeweights-load (release)
#   bin/bench-load                bench/src/bin/load.rs (writes the checkpoints)
#   tests/*                       safeweights-load's test executables (release)
#   wheels/safeweights-*.whl      the abi3 wheel of python/ (CPython >= 3.9)
#   bench/gpu/*, bench/peers/*    the scripts that run on the GPU machine
#   MANIFEST                      commit, toolchain, glibc floor, sha256 sums
#
# and a tarball of the folder beside it (KIT_DIR.tar.gz).
#
# Usage (from anywhere in the repository):
#   bash bench/gpu/build_kit.sh [--ref REV] [KIT_DIR]     # default: target/gpu-kit
#
#   --ref REV   build the committed tree of REV (e.g. HEAD), exported with
#               `git archive` into target/gpu-kit-src, instead of the work
#               tree as it is (uncommitted edits included; MANIFEST says so)
#
# Environment:
#   KIT_GLIBC=2.28    oldest glibc the kit must run on: binaries and wheel are
#                     linked by zig against that glibc (cargo-zigbuild,
#                     maturin --zig), so a kit built on a new distribution
#                     still runs on an older GPU host. 2.28 is the floor of
#                     current torch wheels (manylinux_2_28). KIT_GLIBC=host
#                     links with the system toolchain instead (the kit then
#                     needs this machine's glibc or newer).
#   KIT_TOOLS=DIR     venv for maturin, ziglang and cargo-zigbuild (from PyPI;
#                     created when missing; default target/gpu-kit-tools)
#   CARGO_TARGET_DIR  honoured as usual (default target/)
#   PYTHON=python3    the Python that creates KIT_TOOLS
set -euo pipefail
orig=$PWD
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
REF=
while [ $# -gt 0 ]; do
  case "$1" in
    --ref) REF=${2:?--ref needs a revision}; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    -*) echo "build_kit: unknown option $1" >&2; exit 2 ;;
    *) KIT_DIR=$1; shift ;;
  esac
done
KIT=${KIT_DIR:-$root/target/gpu-kit}
case "$KIT" in /*) ;; *) KIT="$orig/$KIT" ;; esac
GLIBC=${KIT_GLIBC:-2.28}
TOOLS=${KIT_TOOLS:-$root/target/gpu-kit-tools}
PYTHON=${PYTHON:-python3}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
HOST=x86_64-unknown-linux-gnu
export CARGO_TERM_COLOR=never

step() { printf '\n==> %s\n' "$*" >&2; }
die() { echo "build_kit: $*" >&2; exit 1; }

[ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] || die "builds for x86-64 Linux, on x86-64 Linux only"
command -v cargo >/dev/null || die "cargo not found (this script runs where the Rust toolchain is)"

step "tools venv: $TOOLS (maturin, ziglang, cargo-zigbuild)"
if [ ! -x "$TOOLS/bin/maturin" ] || { [ "$GLIBC" != host ] && [ ! -x "$TOOLS/bin/cargo-zigbuild" ]; }; then
  "$PYTHON" -m venv "$TOOLS"
  pkgs="maturin>=1.5,<2"
  [ "$GLIBC" != host ] && pkgs="$pkgs ziglang cargo-zigbuild"
  # shellcheck disable=SC2086
  "$TOOLS/bin/python" -m pip install -q --disable-pip-version-check $pkgs
fi
# cargo-zigbuild and maturin --zig find zig as `python3 -m ziglang`.
export PATH="$TOOLS/bin:$PATH"

if [ "$GLIBC" = host ]; then
  TRIPLE=$HOST
  build() { cargo build --release --target "$TRIPLE" "$@"; }
  test_no_run() { cargo test --release --target "$TRIPLE" --no-run "$@"; }
  maturin_args=(--target "$TRIPLE")
else
  [[ "$GLIBC" =~ ^2\.[0-9]+$ ]] || die "KIT_GLIBC must look like 2.28 (or be 'host'), not $GLIBC"
  TRIPLE=$HOST.$GLIBC  # cargo-zigbuild's spelling: the triple plus the glibc version
  build() { cargo-zigbuild zigbuild --release --target "$TRIPLE" "$@"; }
  test_no_run() { cargo-zigbuild test --release --target "$TRIPLE" --no-run "$@"; }
  maturin_args=(--zig --target "$HOST" --compatibility "manylinux_${GLIBC/./_}")
fi
# Artifacts land in target/<triple without the glibc suffix>/release.
OUTDIR=$CARGO_TARGET_DIR/$HOST/release

if [ -n "$REF" ]; then
  commit=$(git rev-parse --verify "$REF^{commit}") || die "no such revision: $REF"
  src=$root/target/gpu-kit-src
  step "source: $REF ($commit), exported to $src"
  rm -rf "$src" && mkdir -p "$src"
  git archive "$commit" | tar -x -C "$src"
  cd "$src"
  dirty=""
else
  commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
  dirty=$(git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo " + uncommitted changes of the work tree" || true)
  step "source: the work tree $root ($commit$dirty)"
fi
src=$PWD

if [ -e "$KIT" ] && [ ! -f "$KIT/MANIFEST" ] && [ -n "$(ls -A "$KIT" 2>/dev/null)" ]; then
  die "$KIT exists and is not a kit (no MANIFEST): not removing it"
fi
rm -rf "$KIT" "$KIT.tar.gz"
mkdir -p "$KIT/bin" "$KIT/tests" "$KIT/wheels" "$KIT/bench/gpu" "$KIT/bench/peers"

step "safeweights CLI (safeweights-cli, release)"
build -p safeweights-cli --bin safeweights
cp "$OUTDIR/safeweights" "$KIT/bin/safeweights"

step "safeweights-load example 'load' (release)"
build -p safeweights-load --example load
cp "$OUTDIR/examples/load" "$KIT/bin/load-example"

step "bench 'load' (safeweights-bench, release)"
build -p safeweights-bench --bin load
cp "$OUTDIR/load" "$KIT/bin/bench-load"

step "safeweights-load test executables (release)"
test_no_run -p safeweights-load --message-format=json >"$KIT/.tests.json"
# One line of JSON per artifact; test executables have profile.test and an
# executable path. Named <kind>-<target name>: lib-safeweights_load, test-load.
"$PYTHON" - "$KIT/.tests.json" "$KIT/tests" <<'P'
import json, os, shutil, sys
src, dst = sys.argv[1], sys.argv[2]
n = 0
for line in open(src):
    if not line.startswith("{"):
        continue
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    if not m.get("profile", {}).get("test"):
        continue
    kind = m["target"]["kind"][0]
    name = f"{kind}-{m['target']['name']}"
    shutil.copy2(m["executable"], os.path.join(dst, name))
    print(f"  tests/{name}  <- {m['executable']}", file=sys.stderr)
    n += 1
if n == 0:
    sys.exit("no test executables in cargo's JSON output")
P
rm -f "$KIT/.tests.json"

step "Python wheel (maturin build --release, abi3)"
(cd python && maturin build --release "${maturin_args[@]}" --out "$KIT/wheels")
ls "$KIT"/wheels/safeweights-*-abi3-*.whl >/dev/null || die "no abi3 wheel was built"

step "scripts"
cp bench/gpu/README.md bench/gpu/run_gpu.sh bench/gpu/load_gpu.py bench/gpu/build_kit.sh "$KIT/bench/gpu/"
cp bench/peers/reference_load.py "$KIT/bench/peers/"
chmod +x "$KIT"/bin/* "$KIT"/tests/*

step "checks and MANIFEST"
# The newest glibc symbol version any binary or the extension needs.
need_glibc() {
  objdump -T "$@" 2>/dev/null | grep -o 'GLIBC_2\.[0-9]*' | sort -t. -k2,2n -u | tail -1 | sed 's/GLIBC_//'
}
wheel=$(ls "$KIT"/wheels/safeweights-*.whl)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PYTHON" -m zipfile -e "$wheel" "$tmp"
so=$(find "$tmp" -name '_safeweights*.so' | head -1)
[ -n "$so" ] || die "the wheel has no extension module"
floor=$(need_glibc "$KIT"/bin/* "$KIT"/tests/* "$so")
echo "needs glibc >= $floor" >&2
if [ "$GLIBC" != host ]; then
  [ "$(printf '%s\n%s\n' "$floor" "$GLIBC" | sort -t. -k2,2n | tail -1)" = "$GLIBC" ] ||
    die "binaries need glibc $floor, newer than KIT_GLIBC=$GLIBC"
fi
"$KIT/bin/safeweights" --version >&2
{
  echo "safeweights GPU kit"
  echo "built:      $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n)"
  echo "commit:     $commit$dirty"
  echo "rustc:      $(rustc --version)"
  echo "target:     $TRIPLE"
  echo "glibc:      needs >= $floor (KIT_GLIBC=$GLIBC; built on glibc $(getconf GNU_LIBC_VERSION | awk '{print $2}'))"
  echo "wheel:      $(basename "$wheel")"
  echo "bench-load: its CPU peer script is compiled in as a path; run_gpu.sh passes --no-peer where that path is absent"
  echo "bench_peer_script=$src/bench/peers/reference_load.py"
  echo
  (cd "$KIT" && find bin tests wheels -type f | sort | xargs sha256sum)
} >"$KIT/MANIFEST"

step "tarball"
tar -C "$(dirname "$KIT")" -czf "$KIT.tar.gz" "$(basename "$KIT")"
du -sh "$KIT" "$KIT.tar.gz" >&2
echo "kit: $KIT  (carry $KIT.tar.gz; on the GPU machine: bash bench/gpu/run_gpu.sh, see README.md)" >&2
