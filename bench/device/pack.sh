#!/usr/bin/env bash
# Packs, on this machine, what a lent GPU machine lacks to run Loom's webgpu benchmarks and tests
# (bench/README.md, "On a real GPU"): node itself, node_modules without what the webgpu engine
# never loads (onnxruntime-node, the type checker, the linter) and with linux-x64 binaries only,
# and Debian's Vulkan loader. Into device-carry/ (git-ignored), about 46 MB; with the working
# tree (~13 MB) that stays under the 64 MiB a device call carries. The webgpu tests that compare
# with the onnx engine fail there for want of onnxruntime-node (~12 MB more). Then:
#   run(command="bash bench/device/run.sh env tests lorastep scaling-tiny", carry=["device-carry"])
set -euo pipefail
cd "$(dirname "$0")/../.."
kit=device-carry
mkdir -p "$kit/deb"
[ -d node_modules/webgpu ] || { echo "[pack] node_modules/webgpu missing: run npm ci first" >&2; exit 1; }

echo "[pack] node $(node --version) -> $kit/node.xz" >&2
xz -T0 -6 -c "$(command -v node)" > "$kit/node.xz"

echo "[pack] node_modules (linux-x64, what the webgpu engine, tsx and vitest load) -> $kit/modules.tar.xz" >&2
tar --exclude='node_modules/@biomejs' --exclude='node_modules/typescript' \
  --exclude='node_modules/onnxruntime-node' --exclude='node_modules/onnxruntime-common' \
  --exclude='node_modules/.cache' \
  --exclude='node_modules/webgpu/dist/darwin-*' --exclude='node_modules/webgpu/dist/win32-*' \
  --exclude='node_modules/webgpu/dist/linux-arm64' \
  -cf - node_modules | xz -T0 -6 > "$kit/modules.tar.xz"

echo "[pack] Vulkan loader (Debian's libvulkan1) -> $kit/deb/" >&2
lists=/tmp/loom-apt-amd64
mkdir -p "$lists/partial"
apt=(-qq -oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$lists")
apt-get "${apt[@]}" update
rm -f "$kit"/deb/*.deb
(cd "$kit/deb" && apt-get "${apt[@]}" download libvulkan1)

du -sh "$kit"/* "$kit"/deb/* >&2
