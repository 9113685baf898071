/**
 * The machine's memory-read bandwidth, measured inside a benchmark's own run: a decode step at
 * small batch reads every weight once, so its bound is weight bytes / this bandwidth, and on a
 * shared machine that bandwidth moves by tens of percent from one hour to the next (33 GB/s with
 * 2 threads on a day when issue 10's filing measured 52–65). A ratio to a bound is only honest
 * when the bound is measured beside the step it judges.
 *
 * How: `threads` worker threads each scan their share of one zeroed SharedArrayBuffer for a byte
 * that is not there (Buffer.indexOf, which is glibc's vectorized memchr): one load per byte, no
 * stores, no arithmetic to wait for. At 2 threads it agreed within 1 GB/s with onnxruntime's own
 * ReduceSum over the same number of bytes.
 */
import { Worker } from 'node:worker_threads';

/** Large against any last-level cache (32 MB here), small against the machine's memory. */
const DEFAULT_BYTES = 512 * 2 ** 20;

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { buffer, from, to } = workerData;
const view = Buffer.from(buffer, from, to - from);
parentPort.on('message', () => parentPort.postMessage(view.indexOf(1)));
parentPort.postMessage('ready');
`;

export class ReadBandwidthProbe {
  private constructor(
    private readonly workers: Worker[],
    readonly bytes: number,
  ) {}

  static async create(threads: number, bytes = DEFAULT_BYTES): Promise<ReadBandwidthProbe> {
    const share = Math.floor(bytes / threads / 4096) * 4096;
    const buffer = new SharedArrayBuffer(share * threads);
    // Touched once here, so a pass reads resident pages rather than faulting zero pages in.
    new Uint8Array(buffer).fill(0);
    const workers = Array.from(
      { length: threads },
      (_, i) =>
        new Worker(WORKER_SOURCE, {
          eval: true,
          workerData: { buffer, from: i * share, to: (i + 1) * share },
        }),
    );
    await Promise.all(workers.map((w) => reply(w)));
    return new ReadBandwidthProbe(workers, share * threads);
  }

  /** One pass over the buffer by every thread at once: GB/s (10⁹ bytes per second). */
  async measure(): Promise<number> {
    const t0 = performance.now();
    await Promise.all(
      this.workers.map((w) => {
        const done = reply(w);
        w.postMessage('scan');
        return done;
      }),
    );
    return this.bytes / ((performance.now() - t0) * 1e6);
  }

  /** The best of `passes` passes: other tenants only ever slow a pass down. */
  async best(passes: number): Promise<number> {
    let best = 0;
    for (let i = 0; i < passes; i++) best = Math.max(best, await this.measure());
    return best;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

function reply(worker: Worker): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    worker.once('error', onError);
    worker.once('message', (message) => {
      worker.off('error', onError);
      resolve(message);
    });
  });
}
