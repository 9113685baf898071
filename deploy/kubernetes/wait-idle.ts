/**
 * A Loom pod's preStop hook: the graceful drain. Kubernetes runs it before SIGTERM, once the pod
 * is terminating and leaving its Service and InferencePool, so no new requests arrive; it waits
 * until the replica has no running or waiting request (vLLM's gauges on /metrics), or until
 * --timeout, then returns and SIGTERM closes the server with nothing left to cut short.
 *
 *   npx tsx deploy/kubernetes/wait-idle.ts [--port 8000] [--settle 5] [--timeout 110]
 */
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.PORT ?? '8000' },
    settle: { type: 'string', default: '5' },
    timeout: { type: 'string', default: '110' },
    interval: { type: 'string', default: '0.5' },
  },
});
const seconds = (name: keyof typeof values) => {
  const value = Number(values[name]);
  if (!Number.isFinite(value) || value < 0) {
    console.error(`wait-idle: --${name} must be a number of seconds ≥ 0, got "${values[name]}"`);
    process.exit(2);
  }
  return value * 1000;
};
const url = `http://127.0.0.1:${values.port}/metrics`;
const settleMs = seconds('settle');
const timeoutMs = seconds('timeout');
const intervalMs = seconds('interval');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Requests running plus waiting, summed over every model_name; null when /metrics does not answer. */
async function requestsInFlight(): Promise<number | null> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
    if (!response.ok) return null;
    let total = 0;
    for (const line of (await response.text()).split('\n')) {
      const match = /^vllm:num_requests_(?:running|waiting)(?:\{[^}]*\})?\s+(\S+)/.exec(line);
      if (match) total += Number(match[1]);
    }
    return total;
  } catch {
    return null;
  }
}

const started = Date.now();
await sleep(settleMs);
for (;;) {
  const inFlight = await requestsInFlight();
  const waited = ((Date.now() - started) / 1000).toFixed(1);
  if (inFlight === 0 || inFlight === null) {
    console.error(
      inFlight === 0 ? `wait-idle: idle after ${waited} s` : `wait-idle: ${url} does not answer; not waiting`,
    );
    break;
  }
  if (Date.now() - started >= timeoutMs) {
    console.error(`wait-idle: ${inFlight} requests still in flight after ${waited} s; stopping anyway`);
    break;
  }
  await sleep(intervalMs);
}
