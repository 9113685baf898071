import { expect } from 'vitest';
import type { Engine, RowSampling, SampledStep, SequenceStep, StepPlan } from '../../kernels/engine.js';
import { logSumExp, type TokenLogprobs } from '../../kernels/logprobs.js';
import type { AdapterLayout } from '../../memory/adapter-layout.js';
import type { LoraAdapter } from '../../model/lora-adapter.js';
import { syntheticAdapter, syntheticWeights, TINY_SPEC } from '../../model/synthetic.js';
import { mulberry32 } from '../../scheduler/prng.js';
import { randomTokens, referenceHarness } from './reference-harness.js';

/** The tolerance the issue sets: logprobs within 1e-4 of the reference engine's log-softmax. */
export const LOGPROB_TOLERANCE = 1e-4;

export const scenarioWeights = () => syntheticWeights({ ...TINY_SPEC, seed: 21 });

/**
 * One mixed batch, then decode steps, run on `engine` and on the reference engine (the oracle,
 * logits of every token): adapters of two ranks and the base model in one step, some sequences
 * asking for their sampled token's log-probabilities (k = 0, 5, 20), one also for its prompt's
 * (with a k of its own), one prefill chunk that scores its prompt but samples nothing, and one
 * sequence asking nothing. Every log-probability the engine returns must be the log-softmax of
 * the reference's logits for that row at that token (within LOGPROB_TOLERANCE), its rank the
 * reference's, and its top tokens the reference's top.
 */
export async function runLogprobScenario(
  makeEngine: (harness: ReturnType<typeof referenceHarness>) => Promise<Engine>,
  sampleStep: (engine: Engine, plan: StepPlan, sampling: RowSampling[]) => Promise<SampledStep>,
): Promise<{ numChecked: number }> {
  const weights = scenarioWeights();
  const config = weights.config;
  const harness = referenceHarness(weights, 3000, 9);
  const engine = await makeEngine(harness);
  const adapters: LoraAdapter[] = [
    syntheticAdapter(config, {
      name: 'a4',
      rank: 4,
      alpha: 8,
      targetModules: ['q_proj', 'v_proj'],
      seed: 31,
    }),
    syntheticAdapter(config, {
      name: 'a16',
      rank: 16,
      alpha: 16,
      targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
      seed: 32,
    }),
  ];
  const layouts = adapters.map((a, i) => harness.loadInto([engine], a, i === 1 ? 4 : undefined));
  const rand = mulberry32(3);
  const prompts = [9, 6, 5, 7].map((n, i) => randomTokens(n, config.vocabSize, 40 + i));
  const nextChunk = randomTokens(1, config.vocabSize, 50)[0];
  const owners: Array<AdapterLayout | null> = [layouts[0], layouts[1], null, layouts[1]];
  let numChecked = 0;
  const checkedRow = (
    got: TokenLogprobs | null | undefined,
    refRow: Float32Array,
    token: number,
    topK: number,
  ) => {
    expect(got).toBeTruthy();
    if (!got) return;
    numChecked++;
    const norm = logSumExp(refRow);
    expect(got.tokenId).toBe(token);
    expect(Math.abs(got.logprob - (refRow[token] - norm))).toBeLessThanOrEqual(LOGPROB_TOLERANCE);
    // vLLM's rank: tokens at least as likely; a near tie may count either way.
    const countAbove = (margin: number) => refRow.filter((x) => x >= refRow[token] + margin).length;
    expect(got.rank).toBeGreaterThanOrEqual(countAbove(LOGPROB_TOLERANCE));
    expect(got.rank).toBeLessThanOrEqual(countAbove(-LOGPROB_TOLERANCE));
    expect(got.topIds.length).toBe(topK);
    const sorted = Float64Array.from(refRow).sort().reverse();
    got.topIds.forEach((id, r) => {
      expect(Math.abs(got.topLogprobs[r] - (refRow[id] - norm))).toBeLessThanOrEqual(LOGPROB_TOLERANCE);
      // The r-th listed token is the r-th most likely one (a near tie may swap equals).
      expect(Math.abs(refRow[id] - sorted[r])).toBeLessThanOrEqual(LOGPROB_TOLERANCE);
    });
  };

  const prefill: SequenceStep[] = [
    {
      ...harness.sequenceStep(1, prompts[0], 0, owners[0], 'last'),
      logprobs: {
        topK: 5,
        sampled: true,
        promptTargets: Int32Array.from(prompts[0].slice(1)),
        promptTopK: 7,
      },
    },
    harness.sequenceStep(2, prompts[1], 0, owners[1], 'last'),
    { ...harness.sequenceStep(3, prompts[2], 0, owners[2], 'last'), logprobs: { topK: 0, sampled: true } },
    {
      ...harness.sequenceStep(4, prompts[3], 0, owners[3], 'none'),
      logprobs: {
        topK: 3,
        sampled: false,
        promptTargets: Int32Array.from([...prompts[3].slice(1), nextChunk]),
      },
    },
  ];
  const topKs = [5, null, 0];
  let plan: StepPlan = { sequences: prefill };
  const lengths = prompts.map((p) => p.length);
  for (let step = 0; step < 4; step++) {
    const sampling: RowSampling[] = [0, 1, 2].map((i) => ({
      temperature: i === 1 ? 0 : 0.9,
      topK: 0,
      topP: 1,
      uniform: rand(),
    }));
    const got = await sampleStep(engine, plan, sampling);
    const oracle = await harness.engine.step({
      sequences: plan.sequences.map((s) => ({ ...s, logits: 'all' as const })),
    });
    const vocab = config.vocabSize;
    let refRow = 0;
    let sampledRow = 0;
    plan.sequences.forEach((s, i) => {
      const rowOf = (t: number) => oracle.subarray((refRow + t) * vocab, (refRow + t + 1) * vocab);
      const targets = s.logprobs?.promptTargets;
      if (targets) {
        expect(got.promptLogprobs[i]).toHaveLength(targets.length);
        targets.forEach((target, t) => {
          const k = s.logprobs?.promptTopK ?? s.logprobs?.topK ?? 0;
          checkedRow(got.promptLogprobs[i]?.[t], rowOf(t), target, k);
        });
      } else expect(got.promptLogprobs[i]).toBeNull();
      if (s.logits === 'last') {
        const token = got.tokens[sampledRow];
        if (s.logprobs?.sampled)
          checkedRow(got.logprobs[sampledRow], rowOf(s.tokens.length - 1), token, s.logprobs.topK);
        else expect(got.logprobs[sampledRow]).toBeNull();
        sampledRow++;
      }
      refRow += s.tokens.length;
    });
    // Decode: the three sampling sequences go on with what was sampled; k changes per step.
    const decode = [0, 1, 2].map((i): SequenceStep => {
      const step = harness.sequenceStep(i + 1, [got.tokens[i]], lengths[i], owners[i], 'last');
      lengths[i]++;
      const topK = step.seqId === 2 ? (i === 1 && lengths[i] % 2 === 0 ? 20 : null) : topKs[i];
      return topK === null ? step : { ...step, logprobs: { topK, sampled: true } };
    });
    plan = { sequences: decode };
  }
  await engine.close();
  return { numChecked };
}
