#!/usr/bin/env bash
# Runs the reference safetensors package's own Python test suite against
# safeweights installed as `safetensors` (safeweights.install_as_safetensors()
# in a conftest), from the reference's source distribution on PyPI.
# Test modules for frameworks that are not installed (jax/flax, tensorflow,
# paddle, mlx) are left out; everything else must pass.
# Usage: python/tests/reference/run.sh [PYTHON]   (default: python)
set -euo pipefail
py=${1:-python}
version=$("$py" -c "import safeweights._install as i; print(i.REFERENCE_VERSION)")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$py" -m pip download -q --disable-pip-version-check --no-deps --no-binary safetensors \
  "safetensors==$version" -d "$work/sdist"
tar -xzf "$work/sdist/safetensors-$version.tar.gz" -C "$work"
suite="$work/run"
mkdir -p "$suite"
cp -r "$work/safetensors-$version/bindings/python/tests" "$suite/tests"
cat > "$suite/tests/conftest.py" <<'PY'
import safeweights

safeweights.install_as_safetensors()
PY
ignore=()
for pair in flax:jax tf:tensorflow paddle:paddle mlx:mlx; do
  name=${pair%%:*} module=${pair##*:}
  if ! "$py" -c "import $module" 2>/dev/null; then
    ignore+=("--ignore=tests/test_${name}_comparison.py")
  fi
done
cd "$suite"
"$py" -m pytest -q -p no:cacheprovider tests "${ignore[@]}"
