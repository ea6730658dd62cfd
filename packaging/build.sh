#!/usr/bin/env bash
# Build the EndoReview desktop folder (and optionally its tarball) from the environment the tests run in.
#
#   packaging/build.sh              -> dist/EndoReview             (the folder; packaging/smoke_test.sh runs it)
#   packaging/build.sh --tarball    -> and dist/EndoReview-<version>-linux-<arch>.tar.zst   (TARBALL=gz: .tar.gz)
#
# packaging/assemble.py copies into the folder: the CPython the venv was made from, the app's run-time dependencies
# file by file from the venv (the versions pinned in requirements/constraints.txt that every test ran with; the build
# fails if the venv differs from the pins) and this commit's tracked sources. No PyInstaller, no network: a missing
# .venv is made with `make venv` from the local package mirror, exactly as `make test` makes it.
#   BUILD_VENV=<venv>   use another environment made from the same pins (default: .venv of this checkout)
#   BUNDLE_DIR=<dir>    where the folder goes (default: dist/EndoReview)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${BUILD_VENV:-$ROOT/.venv}
OUT=${BUNDLE_DIR:-$ROOT/dist/EndoReview}
tarball=0
[ "${1:-}" = --tarball ] && tarball=1
start=$(date +%s)

if [ -z "${BUILD_VENV:-}" ]; then
  make --no-print-directory venv >/dev/null   # no-op when .venv is up to date with pyproject.toml and the pins
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "{\"event\":\"error\",\"message\":\"no virtual environment at $VENV (make venv)\"}"
  exit 1
fi
mkdir -p "$(dirname "$OUT")"
free_mb=$(df -Pm "$(dirname "$OUT")" | awk 'NR==2 {print $4}')
if [ "$free_mb" -lt 8000 ]; then
  echo "{\"event\":\"error\",\"message\":\"only $free_mb MB free under $(dirname "$OUT"); the folder needs ~5.5 GB (8 GB with the tarball)\"}"
  exit 1
fi

# A clean environment for the assembler: nothing of the caller's Python settings.
env -u PYTHONPATH -u PYTHONHOME -u PYTHONSTARTUP "$VENV/bin/python" -I "$ROOT/packaging/assemble.py" \
  --venv "$VENV" --out "$OUT" --root "$ROOT"

PY=$(cd "$OUT/python" && ls python3.* | grep -v '\._pth$' | head -1)
VERSION=$(env -i "$OUT/python/$PY" -c "import endoreview; print(endoreview.__version__)")
ARCH=$(uname -m)
tar_path=""
tar_mb=0
if [ "$tarball" = 1 ]; then
  if [ "${TARBALL:-zst}" = gz ]; then
    tar_path="$(dirname "$OUT")/EndoReview-$VERSION-linux-$ARCH.tar.gz"
    tar -C "$(dirname "$OUT")" -cf - "$(basename "$OUT")" | gzip -6 > "$tar_path.tmp"
  else
    tar_path="$(dirname "$OUT")/EndoReview-$VERSION-linux-$ARCH.tar.zst"
    tar -C "$(dirname "$OUT")" -cf - "$(basename "$OUT")" | zstd -q -T0 -3 -o "$tar_path.tmp" -f
  fi
  mv "$tar_path.tmp" "$tar_path"
  tar_mb=$(du -sm "$tar_path" | cut -f1)
fi
printf '{"event":"built","folder":"%s","version":"%s","bundle_mb":%s,"tarball":"%s","tarball_mb":%s,"build_s":%s,"glibc_required":"%s"}\n' \
  "$OUT" "$VERSION" "$(du -sm "$OUT" | cut -f1)" "$tar_path" "$tar_mb" "$(($(date +%s) - start))" \
  "$(cat "$OUT/GLIBC_REQUIRED")"
