import type { Engine, SampledStep } from '../kernels/engine.js';
import type { LogprobsMode } from '../kernels/logprobs.js';
import { sampleToken } from '../kernels/sample.js';
import { GenerationError } from './generation-error.js';
import type { GenerationRequest, GenerationStream } from './request.js';
import { type PlannedStep, Scheduler, type SchedulerOptions, type SchedulerStats } from './scheduler.js';
import { stepTokens } from './step-tokens.js';

export interface EngineLoopOptions extends SchedulerOptions {
  engine: Engine;
  /** Host sampler; kernels/sample.ts's sampleToken unless a faster equivalent is given. */
  sample?: typeof sampleToken;
  /** Sample on the engine when it offers Engine.sampleStep (default true); false always samples on the host. */
  sampleOnEngine?: boolean;
  /** vLLM's --logprobs-mode: what sampled tokens' log-probabilities report (default raw_logprobs). */
  logprobsMode?: LogprobsMode;
}

/**
 * The engine loop around the synchronous Scheduler: it owns everything that awaits. Each turn it
 * opens the adapter registry's planning for the step (residency changes happen only here, between
 * steps), asks the scheduler for the step, runs it on the engine while the registry prefetches the
 * queue's next adapters, and hands the sampled tokens back. When nothing can run because adapters
 * are still being read, it waits for a read to settle. New requests join at the next step.
 */
export class EngineLoop {
  readonly scheduler: Scheduler;
  private loop: Promise<void> | null = null;

  constructor(private readonly options: EngineLoopOptions) {
    this.scheduler = new Scheduler(options);
  }

  submit(req: GenerationRequest): GenerationStream {
    const stream = this.scheduler.submit(req);
    this.ensureLoop();
    return stream;
  }

  stats(): SchedulerStats {
    return this.scheduler.stats();
  }

  adaptersInUse(): { running: string[]; waiting: string[] } {
    return this.scheduler.adaptersInUse();
  }

  /** Stops admitting, ends every open stream with finishReason 'abort', resolves once the loop is idle. */
  async close(): Promise<void> {
    this.scheduler.close();
    await this.loop;
  }

  private ensureLoop(): void {
    if (this.loop) return;
    this.loop = this.runLoop().finally(() => {
      this.loop = null;
    });
  }

  private async runLoop(): Promise<void> {
    // Start on a later turn: `this.loop` is set before any step runs (a submit from inside a step
    // must not start a second loop), and requests submitted together share the first step.
    await nextTurn();
    while (this.scheduler.hasWork) {
      try {
        await this.runOneStep();
      } catch (error) {
        this.scheduler.failAll(
          new GenerationError(`scheduler failed: ${messageOf(error)}`, { cause: error }),
        );
      }
      // Let submits, aborts and consumers run between steps even when the engine answers at once.
      await nextTurn();
    }
  }

  private async runOneStep(): Promise<void> {
    const { adapters, kvCache } = this.options;
    const wanted = this.scheduler.adaptersInUse();
    // The running sequences may each need one more KV block at this step, which residency leaves alone.
    // A step admits at most its free seats: only those adapters are worth a copy the loop waits on.
    adapters.planStep(
      wanted.running,
      wanted.waiting,
      this.scheduler.numRunning * kvCache.layout.pagesPerBlock,
      this.options.limits.maxNumSeqs - this.scheduler.numRunning,
    );
    let outcome: ReturnType<Scheduler['schedule']>;
    try {
      outcome = this.scheduler.schedule();
    } finally {
      adapters.endPlanning();
    }
    if (outcome === 'retry') return;
    if (outcome === 'wait') {
      // Nothing to wait on (no read in flight): a submit, a paused consumer reading again or its
      // stall deadline, or at most a moment, rather than spin.
      await (adapters.whenReadSettles() ?? this.scheduler.whenRunnable(1));
      return;
    }
    await this.runStep(outcome);
  }

  private async runStep(step: PlannedStep): Promise<void> {
    let sampled: SampledStep;
    try {
      const pending = stepTokens(
        this.options.engine,
        step.plan,
        step.rows,
        this.options.sample ?? sampleToken,
        this.options.sampleOnEngine ?? true,
        this.options.logprobsMode,
      );
      // The step is under way: read queued adapters from disk and write them into free pages while
      // it runs, so the next step finds them resident instead of waiting on the copy.
      let isStepDone = false;
      const settled = () => {
        isStepDone = true;
      };
      pending.then(settled, settled);
      await this.options.adapters.prefetchDuringStep(() => isStepDone);
      sampled = await pending;
    } catch (error) {
      this.scheduler.failStep(
        step,
        new GenerationError(`engine step failed: ${messageOf(error)}`, { cause: error }),
      );
      return;
    }
    this.scheduler.postprocess(step, sampled);
  }
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
