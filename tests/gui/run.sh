#!/usr/bin/env bash
# The real-window test, run inside the trixie chroot by `make gui-test`:
#   bash tests/gui/run.sh ZIP OUT_DIR
# Installs the extension zip into a fresh Blender user folder, saves a small scene, starts Xvfb and runs
# tests/gui/artist_session.py in a real Blender window. Screenshots and session.json land in OUT_DIR.
set -euo pipefail
ZIP=$(realpath "$1"); OUT=$(realpath -m "$2")
export HOME=/tmp/grf-gui-home
WORK=/tmp/grf-gui
rm -rf "$HOME" "$WORK" "$OUT"
mkdir -p "$HOME" "$WORK" "$OUT"
blender --version | head -1
blender --command extension install-file -r user_default -e "$ZIP"
blender -b --factory-startup --python tests/gui/make_scene.py -- "$WORK/shot.blend" >"$OUT/make_scene.log" 2>&1

Xvfb :99 -screen 0 1920x1080x24 -nolisten tcp >"$OUT/xvfb.log" 2>&1 &
XVFB=$!
trap 'kill $XVFB 2>/dev/null || true' EXIT
export DISPLAY=:99
for _ in $(seq 50); do xdotool getdisplaygeometry >/dev/null 2>&1 && break; sleep 0.2; done

status=0
GRF_GUI_OUT="$OUT" timeout 1500 blender "$WORK/shot.blend" --python tests/gui/artist_session.py \
  >"$OUT/blender.log" 2>&1 || status=$?
if [ $status -eq 0 ]; then  # Blender was closed mid-render: a new one opens the file
  GRF_GUI_OUT="$OUT" GRF_GUI_PHASE=reopen timeout 600 blender "$WORK/shot.blend" \
    --python tests/gui/artist_session.py >>"$OUT/blender.log" 2>&1 || status=$?
fi
grep -E "^GUI " "$OUT/blender.log" || true
if [ $status -ne 0 ]; then
  echo "error: the real-window session failed (exit $status); last lines of $OUT/blender.log:"
  tail -40 "$OUT/blender.log"
  for log in "$HOME"/.config/blender/*/extensions/.user/user_default/gpu_render_farm/jobs/*/logs/dispatcher.log; do
    [ -f "$log" ] && { echo "== $log"; tail -15 "$log"; }
  done
fi
exit $status
