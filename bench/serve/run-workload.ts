import type { BenchRequest } from './random-dataset.js';
import { type RequestOutcome, type StreamOptions, streamRequest } from './stream-request.js';

export interface WorkloadProgress {
  numDone: number;
  numFailed: number;
  numInFlight: number;
  numTotal: number;
  elapsedSeconds: number;
}

export interface WorkloadOptions extends Omit<StreamOptions, 'benchStart'> {
  /** `--max-concurrency`: requests beyond it wait for a slot (their clock starts when sent); null = no cap. */
  maxConcurrency: number | null;
  onProgress?: (progress: WorkloadProgress) => void;
}

/** A counting semaphore: at most `limit` holders; the rest wait in arrival order. */
class Slots {
  private free: number;
  private readonly waiters: (() => void)[] = [];
  constructor(limit: number) {
    this.free = limit;
  }
  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((resolve) => this.waiters.push(resolve));
  }
  release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.free++;
  }
}

function sleepUntil(benchStart: number, offsetSeconds: number): Promise<void> {
  const wait = benchStart + offsetSeconds * 1000 - performance.now();
  return wait > 0 ? new Promise((resolve) => setTimeout(resolve, wait)) : Promise.resolve();
}

/**
 * Sends every request at its arrival offset (capped by `maxConcurrency`) and waits for all.
 * The duration runs from the first send to the last answer, as vLLM's benchmark measures it.
 */
export async function runWorkload(
  requests: readonly BenchRequest[],
  options: WorkloadOptions,
): Promise<{ outcomes: RequestOutcome[]; durationSeconds: number }> {
  const benchStart = performance.now();
  const slots = options.maxConcurrency === null ? null : new Slots(options.maxConcurrency);
  const progress: WorkloadProgress = {
    numDone: 0,
    numFailed: 0,
    numInFlight: 0,
    numTotal: requests.length,
    elapsedSeconds: 0,
  };
  const report = () => {
    progress.elapsedSeconds = (performance.now() - benchStart) / 1000;
    options.onProgress?.({ ...progress });
  };
  const outcomes = await Promise.all(
    requests
      .map(async (request) => {
        await sleepUntil(benchStart, request.offsetSeconds);
        await slots?.acquire();
        progress.numInFlight++;
        try {
          return await streamRequest(request, { ...options, benchStart });
        } finally {
          slots?.release();
          progress.numInFlight--;
        }
      })
      .map((pending) =>
        pending.then((outcome) => {
          progress.numDone++;
          if (!outcome.success) progress.numFailed++;
          report();
          return outcome;
        }),
      ),
  );
  return { outcomes, durationSeconds: (performance.now() - benchStart) / 1000 };
}
