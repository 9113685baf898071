import type { LogprobRequest, SequenceStep, StepPlan } from '../kernels/engine.js';
import type { AdapterLayout } from '../memory/adapter-layout.js';
import type { KvCache } from '../memory/kv-cache.js';
import type { ScheduledChunk } from './batch-policy.js';
import type { Sequence } from './sequence.js';

/**
 * The engine's plan for the scheduled chunks, `adapters[i]` being chunk i's resident adapter.
 * Reserves each chunk's KV pages first: the policy only schedules what fits, so a refusal is a bug.
 */
export function buildStepPlan(
  chunks: ScheduledChunk<Sequence>[],
  adapters: Array<AdapterLayout | null>,
  kv: KvCache,
): StepPlan {
  // Prefix-cache blocks first: a new page reserved before them could reclaim one of them.
  for (const { seq } of chunks) kv.takeProbedBlocks(seq.seqId);
  const sequences: SequenceStep[] = chunks.map(({ seq, numTokens, needsLogits }, i) => {
    const end = seq.numCachedTokens + numTokens;
    if (!kv.reserve(seq.seqId, end))
      throw new Error(`sequence ${seq.seqId}: the policy scheduled ${end} tokens the pool cannot hold`);
    return {
      seqId: seq.seqId,
      tokens: seq.tokenIds.slice(seq.numCachedTokens, end),
      startPos: seq.numCachedTokens,
      pageTable: kv.pageTable(seq.seqId),
      adapter: adapters[i],
      logits: needsLogits ? 'last' : 'none',
      ...logprobsFor(seq, end, needsLogits),
    };
  });
  return { sequences };
}

/**
 * The log-probabilities a chunk asks for: its sampled token's, and the prompt positions it runs
 * that have not been scored yet (position p scores prompt token p + 1).
 */
function logprobsFor(seq: Sequence, end: number, needsLogits: boolean): { logprobs?: LogprobRequest } {
  const topK = seq.numTopLogprobs;
  const promptTopK = seq.numTopPromptLogprobs;
  const sampled = needsLogits && topK !== null;
  const start = seq.numCachedTokens;
  const lastScored = Math.min(end, seq.numPromptTokens - 1);
  const scoresPrompt = promptTopK !== null && seq.promptLogprobs.length < lastScored && start < lastScored;
  if (!sampled && !scoresPrompt) return {};
  return {
    logprobs: {
      topK: topK ?? 0,
      sampled,
      ...(scoresPrompt
        ? { promptTargets: Int32Array.from(seq.tokenIds.slice(start + 1, lastScored + 1)), promptTopK }
        : {}),
    },
  };
}
