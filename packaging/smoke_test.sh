#!/usr/bin/env bash
# Smoke test of the BUILT bundle: no Python on PATH, empty environment, no network where `unshare -n` works.
# It opens a phantom video offscreen, runs the demo model on its frames through a background job, and must exit 0.
#   packaging/smoke_test.sh [dist/EndoReview]
set -euo pipefail
APPDIR=$(cd "${1:-$(dirname "$0")/../dist/EndoReview}" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/empty-path" "$WORK/home"
NET=()
if unshare -n true 2>/dev/null; then NET=(unshare -n); fi
start=$(date +%s)
set +e
"${NET[@]}" env -i HOME="$WORK/home" PATH="$WORK/empty-path" LANG=C.UTF-8 QT_QPA_PLATFORM=offscreen \
  ENDOREVIEW_DATA_DIR="$WORK/data" "$APPDIR/endoreview" --smoke-test
rc=$?
set -e
"${NET[@]}" env -i HOME="$WORK/home" PATH="$WORK/empty-path" "$APPDIR/endoreview" --version
"${NET[@]}" env -i HOME="$WORK/home" PATH="$WORK/empty-path" "$APPDIR/endofm" --version
# Upgrade check: every committed database of an earlier schema version opens with the built app (backup + migrate).
REPO=$(cd "$(dirname "$0")/.." && pwd)
for db in "$REPO"/tests/data/db_versions/*.sqlite3; do
  [ -e "$db" ] || continue
  cp "$db" "$WORK/upgrade.sqlite3"
  "${NET[@]}" env -i HOME="$WORK/home" PATH="$WORK/empty-path" ENDOREVIEW_DATA_DIR="$WORK/data" \
    "$APPDIR/endoreview" models --db "sqlite:///$WORK/upgrade.sqlite3" list >/dev/null \
    || { echo "{\"event\":\"error\",\"step\":\"upgrade\",\"db\":\"$(basename "$db")\"}"; rc=1; }
  echo "{\"event\":\"upgrade\",\"db\":\"$(basename "$db")\",\"ok\":$([ $rc = 0 ] && echo true || echo false)}"
done
printf '{"event":"smoke","rc":%s,"network_isolated":%s,"python_on_path":%s,"seconds":%s}\n' \
  "$rc" "$([ ${#NET[@]} -gt 0 ] && echo true || echo false)" \
  false "$(( $(date +%s) - start ))"
exit $rc
