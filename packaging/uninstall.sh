#!/usr/bin/env bash
# Remove the program. User data (labels database, models, logs) is kept; delete ~/.local/share/EndoReview yourself.
set -euo pipefail
BASE=${1:-$HOME/.local/opt}
rm -rf "$BASE/EndoReview"
for f in "$HOME/.local/share/applications/endoreview.desktop" /usr/share/applications/endoreview.desktop; do
  [ -w "$(dirname "$f")" ] && rm -f "$f"
done
for b in "$HOME/.local/bin" /usr/local/bin; do
  for n in endoreview endofm; do [ -L "$b/$n" ] && [ -w "$b" ] && rm -f "$b/$n"; done
done
echo "EndoReview removed; user data kept in ~/.local/share/EndoReview"
