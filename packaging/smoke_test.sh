#!/usr/bin/env bash
# Smoke test of the BUILT folder, run as a user would run it: empty environment (`env -i`, no Python on PATH), no
# network where `unshare -n` works, and a planted PYTHONPATH, PYTHONHOME and user site that would shadow torch and
# run code at start-up if the folder's Python were not isolated.
#   1. isolation: check_isolation.py with the folder's interpreter (sys.prefix, sys.path, every module and shared
#      library from the folder or the host's desktop stack; a child started like the app's jobs is as isolated)
#   2. endoreview --smoke-test: opens a phantom video offscreen and analyses it with the demo model through a
#      background job
#   3. endoreview/endofm --version, the menu entry's program and icon exist, and every committed database of an
#      earlier schema opens (backup + migrate)
#   4. none of this wrote anything into the folder (a missing .pyc would be written there, for instance)
# Prints one JSON line per step and a summary; exits 0 only if every step passed.
#   packaging/smoke_test.sh [dist/EndoReview]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
APPDIR=$(cd "${1:-$REPO/dist/EndoReview}" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PYVER=$(cd "$APPDIR/python" && ls python3.* | grep -v '\._pth$' | head -1)
mkdir -p "$WORK/empty-path" "$WORK/home" "$WORK/poison/torch"
usersite="$WORK/home/.local/lib/$PYVER/site-packages"
mkdir -p "$usersite/torch"
echo 'raise ImportError("torch came from PYTHONPATH: the folder is not isolated")' > "$WORK/poison/torch/__init__.py"
echo 'raise ImportError("torch came from the user site: the folder is not isolated")' > "$usersite/torch/__init__.py"
echo 'raise SystemExit("usercustomize ran: the folder is not isolated")' > "$usersite/usercustomize.py"
NET=()
if unshare -n true 2>/dev/null; then NET=(unshare -n); fi
RUN=("${NET[@]}" env -i HOME="$WORK/home" PATH="$WORK/empty-path" LANG=C.UTF-8 QT_QPA_PLATFORM=offscreen
  PYTHONPATH="$WORK/poison" PYTHONHOME=/usr/local PYTHONSTARTUP="$usersite/usercustomize.py"
  ENDOREVIEW_DATA_DIR="$WORK/data")
start=$(date +%s)
rc=0
touch "$WORK/before"
fail() { echo "{\"event\":\"error\",\"step\":\"$1\",\"message\":\"$2\"}"; rc=1; }

t=$(date +%s)
"${RUN[@]}" "$APPDIR/python/$PYVER" "$HERE/check_isolation.py" || fail isolation "the folder uses something outside itself (see the leaks above)"
echo "{\"event\":\"step\",\"step\":\"isolation\",\"seconds\":$(( $(date +%s) - t ))}"

t=$(date +%s)
"${RUN[@]}" "$APPDIR/endoreview" --smoke-test || fail smoke-test "endoreview --smoke-test failed (output above)"
echo "{\"event\":\"step\",\"step\":\"smoke-test\",\"seconds\":$(( $(date +%s) - t ))}"

"${RUN[@]}" "$APPDIR/endoreview" --version || fail version "endoreview --version failed"
"${RUN[@]}" "$APPDIR/endofm" --version || fail version "endofm --version failed"
for f in $(sed -n 's#^\(Exec\|Icon\)=@PREFIX@/\([^ ]*\).*#\2#p' "$APPDIR/endoreview.desktop"); do
  [ -e "$APPDIR/$f" ] || fail desktop-entry "the menu entry names $f, which is not in the folder"
done
for db in "$REPO"/tests/data/db_versions/*.sqlite3; do
  [ -e "$db" ] || continue
  cp "$db" "$WORK/upgrade.sqlite3"
  if "${RUN[@]}" "$APPDIR/endoreview" models --db "sqlite:///$WORK/upgrade.sqlite3" list >/dev/null; then
    echo "{\"event\":\"upgrade\",\"db\":\"$(basename "$db")\",\"ok\":true}"
  else
    fail upgrade "$(basename "$db") did not open with the built app"
  fi
done
# "Nothing is written inside the install folder" (README): an installed folder may be read-only or shared.
written=$(find "$APPDIR" -newer "$WORK/before" \( -type f -o -type d \) -print | head -5)
[ -z "$written" ] || fail read-only "the app wrote into its folder: $(echo $written)"
printf '{"event":"smoke","rc":%s,"network_isolated":%s,"python_on_path":false,"seconds":%s}\n' \
  "$rc" "$([ ${#NET[@]} -gt 0 ] && echo true || echo false)" "$(( $(date +%s) - start ))"
exit $rc
