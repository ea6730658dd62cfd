#!/usr/bin/env bash
# Build the EndoReview desktop bundle (PyInstaller one-folder) and a tar.gz with a desktop entry and an installer.
#
#   packaging/build.sh            -> dist/EndoReview-<version>-linux-<arch>.tar.gz
#
# The bundle uses the torch pinned in requirements/constraints.txt, the one every test runs with (2.14.1, a CUDA build
# that also runs on CPU, so the NVIDIA libraries come along); TORCH_CPU=torch==X overrides it (see packaging/README.md).
# Works offline: every package comes from the local wheel folder / package mirror the workstation pip is configured for.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BVENV=${BUILD_VENV:-$ROOT/packaging/.venv-build}
TORCH_CPU=${TORCH_CPU:-$(grep -E '^torch==' requirements/constraints.txt)}
start=$(date +%s)

if [ ! -x "$BVENV/bin/python" ]; then
  python3 -m venv "$BVENV"
fi
PIP="$BVENV/bin/python -m pip --disable-pip-version-check -q"
if [ ! -f "$BVENV/.installed" ] || [ requirements/constraints.txt -nt "$BVENV/.installed" ]; then
  # CPU torch only; torchvision/timm are training extras that the bundle does not need (core_model falls back to
  # pure-torch ops when torchvision is absent).
  $PIP install "$TORCH_CPU"
  grep -vE '^(#|torch==|torchvision==|timm==|triton==|ruff==|pytest|hypothesis|import-linter|grimp|huggingface|hf-xet)' \
    requirements/constraints.txt > "$BVENV/constraints-bundle.txt"
  $PIP install -r "$BVENV/constraints-bundle.txt"
  $PIP install pyinstaller==6.22.3
  touch "$BVENV/.installed"
fi
$PIP install --no-deps --no-build-isolation -e . >/dev/null

VERSION=$("$BVENV/bin/python" -c "import endoreview; print(endoreview.__version__)")
ARCH=$(uname -m)
rm -rf build/pyinstaller dist/EndoReview
"$BVENV/bin/pyinstaller" --noconfirm --clean --log-level WARN \
  --workpath build/pyinstaller --distpath dist packaging/endoreview.spec

APPDIR=dist/EndoReview
cp packaging/endoreview.desktop packaging/install.sh packaging/uninstall.sh "$APPDIR/"
cp packaging/README.md "$APPDIR/INSTALL.md"
cp packaging/LICENSES.md "$APPDIR/LICENSES.md"
chmod +x "$APPDIR/install.sh" "$APPDIR/uninstall.sh"

# The oldest glibc the bundle needs: the highest GLIBC_ symbol version any bundled binary references.
glibc=$(find "$APPDIR" -type f \( -name '*.so*' -o -perm -u+x \) -print0 \
  | { xargs -0 -r objdump -T 2>/dev/null || true; } | grep -oE 'GLIBC_[0-9]+\.[0-9]+(\.[0-9]+)?' | sort -u -V | tail -1)
echo "$glibc" > "$APPDIR/GLIBC_REQUIRED"

TARBALL="dist/EndoReview-$VERSION-linux-$ARCH.tar.gz"
tar -C dist -czf "$TARBALL" EndoReview
end=$(date +%s)
size_dir=$(du -sm "$APPDIR" | cut -f1)
size_tar=$(du -sm "$TARBALL" | cut -f1)
printf '{"event":"built","tarball":"%s","bundle_mb":%s,"tarball_mb":%s,"build_s":%s,"glibc_required":"%s"}\n' \
  "$TARBALL" "$size_dir" "$size_tar" "$((end - start))" "$glibc"
