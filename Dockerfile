# Loom on Debian 12 with Node 22 LTS and Mesa's lavapipe (for --engine webgpu without a GPU).
FROM node:22-bookworm-slim
WORKDIR /app
COPY .ci/install-system.sh .ci/install-system.sh
RUN bash .ci/install-system.sh && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json .npmrc ./
ENV ONNXRUNTIME_NODE_INSTALL=skip
RUN npm ci --omit=dev --no-audit --no-fund
COPY . .
ENV LOOM_CACHE_DIR=/app/.cache/loom
EXPOSE 8000
CMD ["npx", "tsx", "server/main.ts", "--host", "0.0.0.0"]
