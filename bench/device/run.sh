#!/usr/bin/env bash
# Runs on a lent GPU machine (the device tool), from the repository root, with device-carry/
# carried (bench/device/pack.sh makes it): unpacks node and node_modules where the machine lacks
# them, installs the Vulkan loader where it lacks one, points the loader at NVIDIA's driver, then
# runs each JOB in turn and leaves its log and the bench/results files it wrote in
# $OUT/results.tar.gz (the tool brings back at most 8 files). A summary goes to stdout.
#   JOB: env tests kernels tinyllama lorastep scaling-default scaling-tiny
# JOB_TIMEOUT (seconds, default 420) bounds each job; a device call stops at 600 s, so give a
# call the jobs that fit (env+tests+lorastep in one, scaling-tiny in another) in the order that
# matters; the archive is rewritten after every job.
set -uo pipefail
cd "$(dirname "$0")/../.."
kit=device-carry
OUT=${OUT:-/tmp/loom-device-out}
mkdir -p "$OUT" /tmp/loom-node
logs=$(mktemp -d)
marker=$(mktemp)

if ! command -v node > /dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  xz -dc "$kit/node.xz" > /tmp/loom-node/node && chmod +x /tmp/loom-node/node || exit 1
  export PATH="/tmp/loom-node:$PATH"
fi
[ -d node_modules/webgpu ] || tar -xJf "$kit/modules.tar.xz" || exit 1
if ! ldconfig -p | grep -q 'libvulkan.so.1 '; then
  for f in "$kit"/deb/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json \
  /etc/vulkan/icd.d/nvidia_icd.json; do
  if [ -f "$icd" ]; then
    export VK_DRIVER_FILES="$icd"
    break
  fi
done
export CI=true # the webgpu tests fail, not skip, without an adapter

tsx=node_modules/.bin/tsx
# After every job, so that a call stopped at its time limit still brings back the jobs done.
pack_results() {
  find bench/results -type f -newer "$marker" | while read -r f; do
    mkdir -p "$logs/$(dirname "$f")"
    cp "$f" "$logs/$f"
  done
  tar -czf "$OUT/results.tar.gz" -C "$logs" .
}
job() {
  local name=$1
  shift
  local t0=$SECONDS
  timeout "${JOB_TIMEOUT:-420}" "$@" > "$logs/$name.log" 2>&1
  local rc=$?
  echo "== $name: rc $rc, $((SECONDS - t0)) s: $*"
  grep -E 'Tests |passed|failed|\| (uniform|mixed)|ms' "$logs/$name.log" | tail -12
  pack_results
}

for name in "$@"; do
  case $name in
    env)
      job env bash -c 'node --version; uname -a; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv;
        ldconfig -p | grep libvulkan; echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-}"' ;;
    tests)
      job tests node_modules/.bin/vitest run test/webgpu
      # pack.sh leaves onnxruntime-node out: the tests that compare with the onnx engine cannot run.
      n=$(grep -c "Cannot find package 'onnxruntime-node'" "$logs/tests.log")
      [ "$n" -gt 0 ] && echo "   ($n of the failures are tests comparing with the onnx engine, not carried)" ;;
    kernels) job kernels "$tsx" bench/webgpu-kernels.ts --full ;;
    tinyllama) job tinyllama "$tsx" bench/webgpu-tinyllama.ts --dtype f32 ;;
    lorastep) job lorastep "$tsx" bench/webgpu-lora-step.ts ;;
    scaling-default) job scaling-default "$tsx" bench/adapter-scaling.ts --engine webgpu --quick --requests 192 ;;
    scaling-tiny)
      job scaling-tiny "$tsx" bench/adapter-scaling.ts --engine webgpu --model tinyllama --quick --requests 96 \
        --ns 1,2000 --pool-size 16GiB --skip-startup ;;
    *) echo "== $name: no such job (env tests kernels tinyllama lorastep scaling-default scaling-tiny)" ;;
  esac
done

pack_results
echo "results: $OUT/results.tar.gz:"
tar -tzf "$OUT/results.tar.gz" | grep -v '/$'
