#!/usr/bin/env bash
# Issue 12's 1-GPU rows on a lent 1-GPU machine, after the kit's setup (../shared/devkit/README.md), in ONE call:
# short frames (750k triangles, 64 samples, 1280x720, 32 frames), the product's worker alone on the card
# against Blender's own animation render with persistent data on the same card, for this tree and for an
# older tree (ONE_GPU_OLD, e.g. .devkit/old from `git archive`), alternated over ONE_GPU_ROUNDS rounds so
# that drift of the shared host falls on both. Needs Pillow and filelock for the machine's python3
# (ONE_GPU_PYLIB, unpacked wheels). Writes $OUT/one/{<tree><round>.txt, results-<tree><round>.json, table.txt}.
set -u
export GRF_BLENDER=${GRF_BLENDER:-/tmp/kit/bin/bpy-python} PYTHONUNBUFFERED=1
export CUDA_CACHE_PATH=${CUDA_CACHE_PATH:-/tmp/cuda-cache}
PY=${PY:-python3}; OUT=${OUT:-/tmp/out}; HERE=$(pwd)
OLD=${ONE_GPU_OLD:-.devkit/old}; PYLIB=${ONE_GPU_PYLIB:-$HERE/.devkit/pylib}
export PYTHONPATH=$PYLIB${PYTHONPATH:+:$PYTHONPATH}
FRAMES=${ONE_GPU_FRAMES:-32}; RES=${ONE_GPU_RES:-1280x720}; SPP=${ONE_GPU_SAMPLES:-64}; TRI=${ONE_GPU_TRIANGLES:-750000}
WHERE=${ONE_GPU_WHERE:---gpu}
mkdir -p "$OUT/one"
{ nvidia-smi --query-gpu=index,name,pci.bus_id,driver_version --format=csv 2>&1 || true; echo "$(nproc) CPU cores"
  $PY -c "import PIL, filelock; print('Pillow', PIL.__version__)"; } | tee "$OUT/one/machine.txt"
T0=$SECONDS
for round in $(seq 1 "${ONE_GPU_ROUNDS:-2}"); do
  for tree in new old; do
    dir=$HERE; [ "$tree" = old ] && dir=$HERE/$OLD
    [ -d "$dir/dispatcher" ] || continue
    [ $((SECONDS - T0)) -gt "${ONE_GPU_DEADLINE:-400}" ] && break 2
    (cd "$dir" && timeout 200 $PY -m dispatcher bench $WHERE --blender "$GRF_BLENDER" --variant static \
      --frames "$FRAMES" --resolution "$RES" --samples "$SPP" --triangles "$TRI" --out "/tmp/one/$tree$round" \
      --approaches single,blender-1gpu --timeout 150) > "$OUT/one/$tree$round.txt" 2>&1
    cp "/tmp/one/$tree$round/results.json" "$OUT/one/results-$tree$round.json" 2>/dev/null
    grep -E "^(one worker|Blender on 1 GPU|  \[)" "$OUT/one/$tree$round.txt" | sed "s/^/$tree$round: /" \
      | tee -a "$OUT/one/table.txt"
  done
done
echo "== wall $((SECONDS - T0)) s"
