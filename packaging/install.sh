#!/usr/bin/env bash
# Install EndoReview from the unpacked tarball. User data (database, models, caches, logs) lives in the user's
# platform data folders (~/.local/share/EndoReview, ~/.cache/EndoReview), never here, so upgrading or reinstalling keeps it.
#   ./install.sh                 -> ~/.local/opt/EndoReview (per user)
#   sudo ./install.sh /opt       -> /opt/EndoReview (all users)
set -euo pipefail
SRC=$(cd "$(dirname "$0")" && pwd)
BASE=${1:-$HOME/.local/opt}
DEST="$BASE/EndoReview"
mkdir -p "$BASE"
if [ -d "$DEST" ]; then
  rm -rf "$DEST.old" && mv "$DEST" "$DEST.old"   # upgrade: keep the previous version until the copy succeeded
fi
cp -a "$SRC" "$DEST.tmp" && mv "$DEST.tmp" "$DEST" && rm -rf "$DEST.old"
if [ "$(id -u)" = 0 ] && [ "$BASE" != "$HOME/.local/opt" ]; then
  APPS=/usr/share/applications; BIN=/usr/local/bin
else
  APPS=$HOME/.local/share/applications; BIN=$HOME/.local/bin
fi
mkdir -p "$APPS" "$BIN"
sed "s#@PREFIX@#$DEST#g" "$DEST/endoreview.desktop" > "$APPS/endoreview.desktop"
ln -sf "$DEST/endoreview" "$BIN/endoreview"
ln -sf "$DEST/endofm" "$BIN/endofm"
echo "EndoReview installed in $DEST (launcher: $APPS/endoreview.desktop, commands in $BIN)"
