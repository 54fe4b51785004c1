#!/usr/bin/env bash
# Issue 12 on a lent 2-GPU machine, after the kit's setup (../shared/devkit/README.md):
#   bash tools/i12_session.sh          the benchmark, in ONE call (about 8 minutes on 2x H100):
#       static scene, I12_STATIC frames: product per-card, one worker alone on GPU 0 for half the frames
#       (the ideal bound), Blender combined + persistent data, Blender alone on GPU 0 + persistent data
#       (1-GPU rows), Blender combined defaults (3 frames, extrapolated), product --layout auto, and
#       per-card with every worker given all CPU threads (vs the default share of cores/GPUs each);
#       deforming scene, I12_DEFORM frames: the same rows but the 1-GPU Blender one; then the tables
#       with PASS/FAIL.
#   bash tools/i12_session.sh -collect tables, chart and raw data of what a cut-short run finished
#   bash tools/i12_session.sh -cold    kernel compile on an empty cache: `prepare` in the background
#       (setsid nohup), watched up to I12_COLD_WAIT s; run it again in the next call to keep watching and
#       collect. Then a first real render on the prepared cache.
# Writes $OUT/i12.log and $OUT/i12/{devices.json, table.txt, results-static.json, results-deforming.json,
# bench-static.png, bench-deforming.png, raw.tgz} (8 files), or $OUT/i12-cold.log and $OUT/i12-cold/cold.tgz. CPU test: I12_TINY=1 PY=.venv/bin/python
# GRF_BLENDER=.venv/bin/python bash tools/i12_session.sh
set -u
export GRF_BLENDER=${GRF_BLENDER:-/tmp/kit/bin/bpy-python} PYTHONUNBUFFERED=1
export CUDA_CACHE_PATH=${CUDA_CACHE_PATH:-/tmp/cuda-cache}
PY=${PY:-python3}; OUT=${OUT:-/tmp/out}; py() { $PY -m dispatcher "$@"; }
mkdir -p "$OUT"
if [ "${I12_TINY:-0}" = 1 ]; then  # CPU lanes, tiny scene: checks the script, not the numbers
  WHERE="--cpu --quick"; FS=${I12_STATIC:-8}; FD=${I12_DEFORM:-8}; RES=32x32; SPP=4; TRI=20000
else
  WHERE="--gpu"; FS=${I12_STATIC:-32}; FD=${I12_DEFORM:-12}; RES=${I12_RES:-1280x720}; SPP=${I12_SAMPLES:-64}
  TRI=${I12_TRIANGLES:-750000}
fi
DEADLINE=${I12_DEADLINE:-420}  # seconds: no approach starts after this (each takes under a minute)
HARD=${I12_HARD:-500}          # seconds: a benchmark still running then is stopped, and what is done is tabulated

bench_variant() {  # bench_variant VARIANT FRAMES BUDGET APPROACHES [extra flags]; results in $B/VARIANT
  local variant=$1 frames=$2 budget=$3 approaches=$4 stop=$((HARD - (SECONDS - T0))); shift 4
  [ $stop -lt 1 ] && stop=1
  timeout -s INT $stop $PY -m dispatcher bench $WHERE --blender "$GRF_BLENDER" \
    --variant "$variant" --frames "$frames" --resolution "$RES" --samples "$SPP" --triangles "$TRI" \
    --out "$B/$variant" --approaches "$approaches" --combined-frames 3 --timeout 150 --budget "$budget" "$@" \
    2>&1 | tee "$B/bench-$variant.txt" | grep -E '^\[|^benchmark|^[0-9]+ frames, '
}

bench_all() {
  B=${I12_WORK:-/tmp/i12}; O=$OUT/i12; rm -rf "$B"; mkdir -p "$O" "$B"
  T0=$SECONDS
  { nvidia-smi --query-gpu=index,name,pci.bus_id,driver_version,compute_cap --format=csv 2>&1 || true
    echo "$(nproc) CPU cores; $FS static / $FD deforming frames at $RES, $SPP samples; deadline ${DEADLINE} s"; }
  py devices --json --blender "$GRF_BLENDER" > "$O/devices.json"
  bench_variant static "$FS" $((DEADLINE * 58 / 100)) per-card,single,per-card-threads,combined-pd,blender-1gpu,combined,auto
  collect static > /dev/null 2>&1  # kept should the rest overrun
  local left=$((DEADLINE - (SECONDS - T0)))
  [ $left -lt 1 ] && left=1
  bench_variant deforming "$FD" $left per-card,single,per-card-threads,combined-pd,combined,auto --no-warmup
  echo "== benchmark wall $((SECONDS - T0)) s"
  collect static deforming
}

collect() {  # collect VARIANT...: $OUT/i12/{table.txt, results-V.json, bench-V.png, raw.tgz}
  O=$OUT/i12; B=${I12_WORK:-/tmp/i12}; mkdir -p "$O"; : > "$O/table.txt"
  for variant in ${*:-static deforming}; do
    [ -f "$B/$variant/settings.json" ] || continue
    py bench --collect --out "$B/$variant" --variant "$variant" | tee -a "$O/table.txt"
    cp "$B/$variant/results.json" "$O/results-$variant.json" 2>/dev/null
    cp "$B/$variant/bench.png" "$O/bench-$variant.png" 2>/dev/null
  done
  (cd "$B" && find . \( -name result.json -o -name frames.jsonl -o -name timeline.json -o -name status.json \
     -o -name 'timing-*.jsonl' -o -name settings.json -o -name '*.blend.json' -o -name dispatcher.log \
     -o -name 'bench-*.txt' \) -print0 | tar czf "$O/raw.tgz" --null -T -)
  ls -la "$O"
}

cold() {
  O=$OUT/i12-cold; C=/tmp/i12-cold; mkdir -p "$O" "$C"
  export CUDA_CACHE_PATH=$C/cuda-cache OPTIX_CACHE_PATH=$C/optix-cache  # empty: what a new user's card has
  if [ ! -f "$C/started" ]; then
    rm -rf "$C"/*; mkdir -p "$CUDA_CACHE_PATH" "$OPTIX_CACHE_PATH"; date +%s > "$C/started"; : > "$C/prepare.log"
    py devices --blender "$GRF_BLENDER" | tee "$C/before.txt"
    setsid nohup bash -c "t=\$(date +%s); $PY -m dispatcher prepare --blender '$GRF_BLENDER' --gpus 0 \
      --job-dir '$C/job'; echo \"prepare exit \$? after \$((\$(date +%s) - t)) s\"" > "$C/prepare.log" 2>&1 < /dev/null &
  fi
  local t0=$SECONDS
  while [ $((SECONDS - t0)) -lt "${I12_COLD_WAIT:-500}" ] && ! grep -q "prepare exit" "$C/prepare.log"; do
    $PY - "$C/job" "$(($(date +%s) - $(cat "$C/started")))" <<'PY' || true
import json, sys
try:
    s = json.load(open(sys.argv[1] + "/status.json"))
    print(f"{sys.argv[2]:>4} s: {s['state']} / {s['phase']}", flush=True)
except Exception:
    print(f"{sys.argv[2]:>4} s: no status yet", flush=True)
PY
    sleep 15
  done
  cat "$C/prepare.log"
  if grep -q "prepare exit" "$C/prepare.log"; then
    py report "$C/job"
    echo "== after prepare"; py devices --blender "$GRF_BLENDER"
    echo "== a user's first render on the prepared cache (new processes)"
    [ -f "$C/s.blend" ] || $GRF_BLENDER dispatcher/blender_scripts/demo_scene.py --out "$C/s.blend" --frames 4 --size 640x360 --samples 32 >/dev/null 2>&1
    t=$SECONDS; py render "$C/s.blend" -o "$C/out" --job-dir "$C/first" --gpus 0 --frames 1-2 --quiet --json > "$C/first.json"
    echo "first render: exit $? wall $((SECONDS - t)) s"; py report "$C/first" | tail -22
  else
    echo "prepare still running: call 'bash tools/i12_session.sh -cold' again to keep watching and collect"
  fi
  (cd "$C" && tar czf "$O/cold.tgz" prepare.log before.txt job/status.json job/frames.jsonl job/timeline.json \
     job/logs first/status.json first/timeline.json 2>/dev/null)
}

case "${1:-}" in
-cold) cold 2>&1 | tee -a "$OUT/i12-cold.log" ;;
-collect) collect static deforming 2>&1 | tee "$OUT/i12-collect.log" ;;  # a later call, when the first one overran
*) bench_all 2>&1 | tee "$OUT/i12.log" ;;
esac
