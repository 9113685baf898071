import { parentPort, workerData } from 'node:worker_threads';
import { type FiniteScanJob, scanFiniteF32 } from './linear-weight-check.js';

/** The worker half of linear-weight-check.ts: checks the job's tensors off the main thread. */
parentPort?.postMessage(scanFiniteF32(workerData as FiniteScanJob[]));
