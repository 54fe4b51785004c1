#!/usr/bin/env bash
# Proof runs on a lent GPU machine (see ../shared/devkit/README.md for carrying Blender there).
#   bash tools/gpu_session.sh cold     first render on a card with no kernel cache: the phase shown, the wait
#   bash tools/gpu_session.sh checks   pinning, device ids, silent-CPU-fallback refusal, overhead, m workers
#   bash tools/gpu_session.sh bench ARGS...   python -m dispatcher bench --gpu ARGS
#   bash tools/gpu_session.sh verify   autotune vs the best approach; a CPU lane beside the GPU
#   bash tools/gpu_session.sh i12      issue 12, one call on 2 GPUs (~8 min): tools/i12_session.sh
#   bash tools/gpu_session.sh i12-cold issue 12: prepare on an empty kernel cache (6-8 min; rerun to collect)
#   bash tools/gpu_session.sh i12-collect  tables of a cut-short i12 run
# Needs /tmp/kit/bin/bpy-python (the kit) and the machine's python3 with psutil and pynvml.
set -u
export GRF_BLENDER=${GRF_BLENDER:-/tmp/kit/bin/bpy-python} PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; W=/tmp/grf; mkdir -p "$OUT" $W
py() { ${PY:-python3} -m dispatcher "$@"; }
scene() {  # scene NAME FRAMES SIZE SAMPLES
  [ -f "$W/$1.blend" ] || $GRF_BLENDER dispatcher/blender_scripts/demo_scene.py --out "$W/$1.blend" --frames "$2" --size "$3" --samples "$4" >/dev/null 2>&1
}
watch_job() {  # watch_job JOBDIR LIMIT: print phase and lanes every 5 s until the job ends
  local t0=$SECONDS
  while [ $((SECONDS - t0)) -lt "$2" ]; do
    python3 - "$1" $((SECONDS - t0)) <<'PY' || break
import json, sys
try:
    s = json.load(open(sys.argv[1] + "/status.json"))
except Exception:
    print(sys.argv[2], "s: no status yet"); sys.exit(0)
lanes = "; ".join(f"{l['name']} {l['state']} f={l['frame']} {l['sample']}/{l['samples']} {l.get('phase') or ''}"
                  for l in s["lanes"])
print(f"{sys.argv[2]:>4} s: {s['state']:<8} {s['phase']:<22} {s['frames']['done']}/{s['frames']['total']} | {lanes}")
sys.exit(3 if s["state"] in ("done", "failed", "cancelled") else 0)
PY
    sleep 5
  done
}
case "${1:-}" in
cold)
  nvidia-smi --query-gpu=index,name,pci.bus_id,uuid,driver_version --format=csv
  py devices
  scene cold 8 1280x720 64
  rm -rf ~/.cache/gpu-render-farm/cuda-cache
  py render $W/cold.blend -o $W/cold_out --frames 1-4 --job-dir $W/cold_job --detach
  watch_job $W/cold_job 560 | tee "$OUT/cold.log"
  py status $W/cold_job
  du -sh ~/.cache/gpu-render-farm/cuda-cache
  echo "== second job, new processes, shared kernel cache"
  t=$SECONDS; py render $W/cold.blend -o $W/cold_out --frames 5-8 --job-dir $W/cold_job2 --quiet --json > $W/j2.json
  echo "second job wall: $((SECONDS - t)) s"; py status $W/cold_job2 ;;
checks)
  py devices --json | tee "$OUT/devices.json"
  scene chk 48 640x360 32
  echo "== per-card render on the GPU: devices each worker really uses"
  py render $W/chk.blend -o $W/chk_out --frames 1-24 --job-dir $W/chk_job --quiet --json > $W/chk.json & pid=$!
  sleep 6; nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv; wait $pid
  python3 -c "import json; s=json.load(open('$W/chk.json')); print(s['state'], s['frames']); [print(l['name'], l['device'], l['devices_used'], 'CUDA_VISIBLE_DEVICES=', l['visible_devices'], l['seconds_per_frame']) for l in s['lanes']]"
  py report $W/chk_job | head -5
  echo "== worker told to use the GPU while CUDA sees none (the silent CPU fallback trap)"
  pci=$(python3 -c "import json; print(json.load(open('$OUT/devices.json'))['gpus'][0]['cycles_pci'])")
  CUDA_VISIBLE_DEVICES= $GRF_BLENDER dispatcher/blender_scripts/worker.py --blend $W/chk.blend --device-type OPTIX --gpu-pci "$pci" </dev/null 2>/dev/null; echo "exit $?"
  echo "== asking for a GPU that is not there"; py render $W/chk.blend -o $W/x --gpus 7; echo "exit $?"
  echo "== 2 workers on one GPU vs 1, persistent data off (24 frames each)"
  for m in 1 2; do t=$SECONDS
    py render $W/chk.blend -o $W/m$m --frames 1-24 --workers-per-gpu $m --no-persistent-data --quiet --json > $W/m$m.json
    echo "workers/GPU=$m wall $((SECONDS - t)) s"; done
  echo "== persistent data on, 1 worker"; t=$SECONDS
  py render $W/chk.blend -o $W/pd --frames 1-24 --quiet --json > $W/pd.json; echo "persistent wall $((SECONDS - t)) s" ;;
bench)
  shift; py bench --gpu --blender "$GRF_BLENDER" "$@" ;;
verify)  # autotune vs the best approach on both variants; a CPU lane beside the GPU (backups at the end)
  B=/tmp/verify
  py bench --gpu --blender "$GRF_BLENDER" --variant static --frames 16 --out $B \
    --approaches per-card,auto,combined-pd,single --timeout 150 2>&1 | grep -E "^\[|^  \[|approach|product|Blender|one worker"
  py bench --gpu --blender "$GRF_BLENDER" --variant deforming --frames 16 --out $B \
    --approaches per-card,auto,combined-pd,per-card-m,single --timeout 150 2>&1 | grep -E "^\[|^  \[|approach|product|Blender|one worker"
  cp $B/results.json "$OUT/verify_results.json" 2>/dev/null
  for lane in "" "--cpu-lane"; do t=$SECONDS
    py render $B/scenes/static.blend -o $W/cl$lane --frames 1-24 --job-dir $W/cljob$lane $lane --json > $W/cl.json
    echo "per-card ${lane:-(GPU only)}: wall $((SECONDS - t)) s"
    python3 -c "import json; s=json.load(open('$W/cl.json')); print(s['state'], s['frames']); [print(' ', l['name'], l['state'], l['frames_done'], l['seconds_per_frame']) for l in s['lanes']]"
    grep -c '"backup": true' $W/cljob$lane/frames.jsonl | sed 's/^/  frames won by a backup copy: /'
  done ;;
i12|i12-cold|i12-collect) exec bash tools/i12_session.sh "${1#i12}" ;;
*) echo "usage: gpu_session.sh cold|checks|bench ...|verify|i12|i12-cold"; exit 2 ;;
esac
