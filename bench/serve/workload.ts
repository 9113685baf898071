import { mulberry32, sequenceSeed } from '../../scheduler/prng.js';
import { assignAdapters } from './adapter-assignment.js';
import { arrivalOffsets } from './arrivals.js';
import { type BenchRequest, lengthRange, randomTokenIds, uniformInt } from './random-dataset.js';
import type { ServeBenchArgs } from './serve-args.js';

export interface WorkloadVocabulary {
  vocabSize: number;
  /** Token ids → text, for text prompts; null when only token-id prompts are sent. */
  decode: ((ids: number[]) => string) | null;
}

/** Independent seeded streams, so changing one knob (say the rate) leaves the others' draws alone. */
const STREAM = { arrivals: 0, lengths: 1, adapters: 2, prompts: 3, prefix: 4 } as const;

/**
 * The requests of one run, fully determined by the flags and the seed: the same seed gives the
 * same prompts, lengths and adapters at every request rate, only the arrival times change.
 */
export function buildWorkload(
  args: ServeBenchArgs,
  baseModel: string,
  requestRate: number,
  vocabulary: WorkloadVocabulary,
): BenchRequest[] {
  const stream = (which: number) => mulberry32(sequenceSeed(args.seed, which));
  const count = args.numPrompts;
  const offsets = arrivalOffsets(stream(STREAM.arrivals), count, requestRate, args.burstiness);
  const models =
    args.loraModules.length === 0
      ? new Array<string>(count).fill(baseModel)
      : assignAdapters(stream(STREAM.adapters), args.loraModules, count, args.loraAssignment, args.loraAlpha);
  const lengths = stream(STREAM.lengths);
  const [inputLow, inputHigh] = lengthRange(args.randomInputLen, args.randomRangeRatio, 1);
  const [outputLow, outputHigh] = lengthRange(args.randomOutputLen, args.randomRangeRatio, 1);
  const prompts = stream(STREAM.prompts);
  // vLLM's --random-prefix-len: one draw, the same first tokens for every prompt.
  const prefix = randomTokenIds(stream(STREAM.prefix), args.randomPrefixLen, vocabulary.vocabSize);
  return offsets.map((offsetSeconds, index) => {
    const inputLen = uniformInt(lengths, inputLow, inputHigh);
    const outputLen = uniformInt(lengths, outputLow, outputHigh);
    const promptIds = [...prefix, ...randomTokenIds(prompts, inputLen, vocabulary.vocabSize)];
    return {
      index,
      model: models[index],
      promptIds,
      promptText: vocabulary.decode ? vocabulary.decode(promptIds) : null,
      outputLen,
      offsetSeconds,
    };
  });
}
