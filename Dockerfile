# Loom on Debian 12 with Node 22 LTS. Two targets:
#   docker build -t loom .                        the CPU (onnx) engine: the default, last stage
#   docker build --target webgpu -t loom:webgpu . adds Mesa's lavapipe (~250 MB) for --engine webgpu
# Invariants (checked by test/packaging/dockerfile.test.ts): non-root user, the embedded model in the image,
# HEALTHCHECK on /health, exec-form CMD that makes node PID 1 (it handles SIGTERM/SIGINT and
# drains), onnxruntime telemetry off, production dependencies only, linux-x64 binaries only.
ARG NODE_IMAGE=node:22-bookworm-slim

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# .npmrc's ignore-scripts keeps onnxruntime-node from fetching CUDA providers from NuGet. The
# packages ship native binaries for every platform: only linux-x64's are kept (~330 MB less).
RUN npm ci --omit=dev --no-audit --no-fund \
  && rm -rf node_modules/onnxruntime-node/bin/napi-v6/darwin \
    node_modules/onnxruntime-node/bin/napi-v6/win32 \
    node_modules/onnxruntime-node/bin/napi-v6/linux/arm64 \
    node_modules/webgpu/dist/darwin-universal \
    node_modules/webgpu/dist/linux-arm64 \
    node_modules/webgpu/dist/win32-arm64 \
    node_modules/webgpu/dist/win32-x64 \
  && test -f node_modules/onnxruntime-node/bin/napi-v6/linux/x64/onnxruntime_binding.node \
  && npm cache clean --force

FROM ${NODE_IMAGE} AS runtime
WORKDIR /app
# GLIBC_TUNABLES: malloc advises transparent huge pages on what it maps (server/huge-pages.ts):
# onnxruntime's prepacked weights and the page pool fault in 2 MiB at a time, not 4 KiB.
ENV NODE_ENV=production \
  ORT_DISABLE_TELEMETRY=1 \
  GLIBC_TUNABLES=glibc.malloc.hugetlb=1
COPY --from=deps /app/node_modules ./node_modules
COPY . .
USER node
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.PORT || 8000}/health`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
CMD ["node", "--import", "tsx", "server/main.ts", "--host", "0.0.0.0"]

FROM runtime AS webgpu
USER root
RUN bash .ci/install-system.sh && rm -rf /var/lib/apt/lists/*
USER node

# Last stage: what a plain `docker build .` makes.
FROM runtime AS cpu
