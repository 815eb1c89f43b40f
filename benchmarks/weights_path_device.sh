#!/usr/bin/env bash
# The official-weights path on the GPU machine, in one command (issue 18): a full-size checkpoint tree
# from seeded random weights (benchmarks/fake_checkpoints.py), doctor, build of a short real video
# (Florence-2 and umT5 on the GPU), then play --headless --realtime with runtime.refiner=auto (it must
# pick the DiT) against bench --play (the DiT with random weights), each run's summary in a table.
#
#   bash benchmarks/weights_path_device.sh [OUT_DIR]          # on the GPU machine, from the repo root
#
# At full size the whole run takes over 10 minutes; PHASES splits it into commands on the same machine
# (same OUT_DIR and WORK; the summary covers every play run so far):
#   PHASES=prepare bash benchmarks/weights_path_device.sh OUT   # tree, doctor, video, encoders, build
#   PHASES=auto bash benchmarks/weights_path_device.sh OUT      # play with auto: cold, then warm
#   PHASES=random bash benchmarks/weights_path_device.sh OUT    # play with random weights
#
# OUT_DIR gets the logs, encoders.json and summary.md (small); the checkpoints, the video, the Scene
# cache and play's frames go under WORK (/tmp/roam_weights_path), outside the repo.
#   SIZE=tiny DEVICE=cpu DEPTH=estimate PLAY_SECONDS=2 WARM_SECONDS=2 RANDOM_SECONDS=2 \
#     SETS="scenes.width=64 scenes.height=32" bash benchmarks/weights_path_device.sh /tmp/wp  # CPU rehearsal
#
# Environment: SIZE (full), DEVICE (auto), DEPTH (auto: DA3 from the tree; build's --depth),
# PLAY_SECONDS (120), WARM_SECONDS (10: a second auto run that measures the warm time to first frame),
# RANDOM_SECONDS (PLAY_SECONDS; 0 skips the random-weights run, a full-size DiT), CKPT (a folder
# outside the repo; 31 GB at full size), RANDOM_PLAY (the command of the random-weights run: bench --play,
# with --tiny at SIZE=tiny), SETS
# (more `--set KEY=VALUE`s for every command, space-separated), PHASES ("prepare auto random"). A step
# that fails is reported and the run goes on. play runs the Scene that build printed (OUT/build.out);
# on the GPU machine the page cache is dropped before the first play where the system allows it, so
# that run reads the weights from disk.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-out/weights_path}}
SIZE=${SIZE:-full}
DEVICE=${DEVICE:-auto}
DEPTH=${DEPTH:-auto}
PHASES=" ${PHASES:-prepare auto random} "
PLAY_SECONDS=${PLAY_SECONDS:-120}
WARM_SECONDS=${WARM_SECONDS:-10}
RANDOM_SECONDS=${RANDOM_SECONDS:-$PLAY_SECONDS}
WORK=${WORK:-/tmp/roam_weights_path}
CKPT=${CKPT:-$WORK/checkpoints_$SIZE}
TINY=$([ "$SIZE" = tiny ] && echo " --tiny" || true)
RANDOM_PLAY=${RANDOM_PLAY:-bench --play$TINY}
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1 SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy ROAM_CACHE_DIR=${ROAM_CACHE_DIR:-$WORK/cache}
SET=(--set "model.checkpoint_dir=$CKPT" --set "runtime.device=$DEVICE")
for kv in ${SETS:-}; do SET+=(--set "$kv"); done
stamp() { date +%s.%N; }
step() { echo; echo "== $1"; }
phase() { [[ "$PHASES" == *" $1 "* ]]; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
df -h "$(dirname "$CKPT")" | tail -1
python3 -c "import torch, transformers, huggingface_hub; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), '| transformers', transformers.__version__, '| huggingface_hub', huggingface_hub.__version__)"

if phase prepare; then
step "fake checkpoints ($SIZE) -> $CKPT"
t0=$(stamp)
python3 -m benchmarks.fake_checkpoints "$CKPT" --size "$SIZE" --device "$DEVICE"
echo "generator_s=$(python3 -c "print(round($(stamp) - $t0, 1))")"
du -sh "$CKPT"

step "doctor"
python3 main.py doctor "${SET[@]}" | tee "$OUT/doctor.log" || true

step "a short real video"
VIDEO=$WORK/walk.mp4
python3 -m benchmarks.weights_path_probe video "$VIDEO" --seconds 5

step "encoders as build loads them (load, run, peak memory)"
ENC_DEVICE=$DEVICE
[ "$DEVICE" = auto ] && ENC_DEVICE=$(python3 -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')
python3 -m benchmarks.weights_path_probe encoders "$CKPT" --device "$ENC_DEVICE" | tee "$OUT/encoders.json" \
  || echo "encoder probe FAILED"

step "build (the user's path: caption, umT5, depth, Scene)"
t0=$(stamp)
python3 main.py build "$VIDEO" --depth "$DEPTH" "${SET[@]}" 2>&1 >"$OUT/build.out" | tee "$OUT/build.log" \
  || echo "build FAILED"
echo "build_s=$(python3 -c "print(round($(stamp) - $t0, 1))")"
fi
phase auto || phase random || exit 0
SCENE=$(tail -n 1 "$OUT/build.out")
echo "scene: $SCENE"

play() {  # name seconds command extra-args...
  local name=$1 seconds=$2 command=$3; shift 3
  step "play $name (${seconds} s)"
  # shellcheck disable=SC2086  # command: the words of play's command (play, or bench --play)
  python3 main.py $command "$SCENE" --headless --realtime --seconds "$seconds" --out "$WORK/$name" \
    "${SET[@]}" --set runtime.refiner=auto "$@" 2>&1 | tee "$OUT/$name.log" || echo "play $name FAILED"
}
if phase auto; then
  sync
  if command -v nvidia-smi >/dev/null && (echo 3 > /proc/sys/vm/drop_caches) 2>/dev/null; then
    echo "page cache dropped"
  else
    echo "page cache kept (no GPU machine, or not allowed here)"
  fi
  play auto_cold "$PLAY_SECONDS" play
  play auto_warm "$WARM_SECONDS" play
fi
if phase random && [ "$RANDOM_SECONDS" != 0 ]; then
  play random_weights "$RANDOM_SECONDS" "$RANDOM_PLAY"
fi

step "summary"
LOGS=()
for name in auto_cold auto_warm random_weights; do [ -f "$OUT/$name.log" ] && LOGS+=("$OUT/$name.log"); done
python3 -m benchmarks.weights_path_probe summary "${LOGS[@]}" | tee "$OUT/summary.md"
grep -h "umT5\|caption" "$OUT"/build.log | tee -a "$OUT/summary.md"
grep -h "refiner: " "${LOGS[@]}" | tee -a "$OUT/summary.md"
