import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Tests that build onnxruntime sessions of their own (not through the onnx engine, which
    // switches it off itself) would start its telemetry too; the no-call-home test removes this
    // from the server it spawns, to prove Loom needs no help.
    env: { ORT_DISABLE_TELEMETRY: '1' },
  },
});
