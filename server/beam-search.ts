import type { TokenLogprobs } from '../kernels/logprobs.js';

/**
 * Beam search as vLLM's OpenAI server runs it (`use_beam_search`), after HF transformers: a driver
 * above the scheduler, not a mode of it. Each round asks for one more token of every live beam
 * (the beam's text as a prompt, one token, its 2·width most likely tokens), every beam's 2·width
 * candidates (and the sampled token, when it is not among them) extend it, and the best `width`
 * by score live on; a candidate that is an end token finishes its beam instead. After max_tokens
 * rounds the finished beams and the live ones are ranked together and the best `width` returned.
 * Prefix caching makes a round cost the beam's tail, not its whole text.
 */
export interface BeamSearchParams {
  /** vLLM's beam_width: the request's `n`. */
  width: number;
  /** Rounds: the most tokens a beam gets. */
  maxTokens: number;
  /** A beam's score is its cumulative logprob over its length (prompt included, end token not) to this power. */
  lengthPenalty: number;
  /** Tokens that finish a beam: the model's EOS (unless ignore_eos) and stop_token_ids. */
  endTokenIds: ReadonlySet<number>;
  /** vLLM's min_tokens: no end token before this many generated tokens. */
  minTokens: number;
  /** vLLM's include_stop_str_in_output: a finished beam keeps its end token (and its logprobs). */
  keepEndToken: boolean;
}

/** One returned beam, best first in beamSearch's answer. */
export interface FinishedBeam {
  /** Generated tokens; the end token last when keepEndToken. */
  tokenIds: number[];
  /** One per token of tokenIds: the token's logprob and its row's top tokens. */
  logprobs: TokenLogprobs[];
  /** Sum of every chosen token's logprob, the end token's included. */
  cumulativeLogprob: number;
  finishReason: 'stop' | 'length';
  /** The end token that finished it (finishReason 'stop'). */
  stopTokenId?: number;
}

/**
 * The next-token row of each beam (its generated tokens after the prompt), in order: the sampled
 * token with its logprob and rank, and at least 2·width top tokens.
 */
export type ScoreBeams = (beams: readonly (readonly number[])[]) => Promise<TokenLogprobs[]>;

interface Beam {
  tokenIds: number[];
  logprobs: TokenLogprobs[];
  cumulativeLogprob: number;
  /** Prompt and generated tokens, the end token left out: what the length penalty divides by. */
  length: number;
  finishReason: 'stop' | 'length';
  stopTokenId?: number;
}

/** vLLM's beam score: the cumulative logprob over the length to the power length_penalty. */
export function beamScore(cumulativeLogprob: number, length: number, lengthPenalty: number): number {
  return cumulativeLogprob / length ** lengthPenalty;
}

/** A row's candidates: its first `count` top tokens, then the sampled token when it is not among them. */
function candidates(row: TokenLogprobs, count: number): Array<{ id: number; logprob: number; rank: number }> {
  const top = Math.min(count, row.topIds.length);
  const out: Array<{ id: number; logprob: number; rank: number }> = [];
  for (let r = 0; r < top; r++) {
    const logprob = row.topLogprobs[r];
    // vLLM's rank, ties ranked last: the listed tokens at least as likely, itself included.
    let rank = r + 1;
    while (rank < row.topIds.length && row.topLogprobs[rank] >= logprob) rank++;
    out.push({ id: row.topIds[r], logprob, rank });
  }
  if (!out.some((c) => c.id === row.tokenId))
    out.push({ id: row.tokenId, logprob: row.logprob, rank: row.rank });
  return out;
}

/** Best first; equal scores keep their order (candidates of earlier beams, more likely tokens first). */
function ranked(beams: Beam[], lengthPenalty: number): Beam[] {
  // A NaN score (a poisoned row) ranks below every number.
  const score = (b: Beam) => {
    const s = beamScore(b.cumulativeLogprob, b.length, lengthPenalty);
    return Number.isNaN(s) ? Number.NEGATIVE_INFINITY : s;
  };
  return beams
    .map((beam) => ({ beam, score: score(beam) }))
    .sort((a, b) => (b.score > a.score ? 1 : b.score < a.score ? -1 : 0))
    .map((s) => s.beam);
}

export async function beamSearch(
  promptLength: number,
  params: BeamSearchParams,
  scoreBeams: ScoreBeams,
): Promise<FinishedBeam[]> {
  const numCandidates = 2 * params.width;
  let live: Beam[] = [
    { tokenIds: [], logprobs: [], cumulativeLogprob: 0, length: promptLength, finishReason: 'length' },
  ];
  const finished: Beam[] = [];
  for (let round = 0; round < params.maxTokens && live.length > 0; round++) {
    const rows = await scoreBeams(live.map((b) => b.tokenIds));
    const extended: Beam[] = [];
    live.forEach((beam, i) => {
      const row = rows[i];
      for (const c of candidates(row, numCandidates)) {
        const scored: TokenLogprobs = { ...row, tokenId: c.id, logprob: c.logprob, rank: c.rank };
        const cumulativeLogprob = beam.cumulativeLogprob + c.logprob;
        if (!params.endTokenIds.has(c.id)) {
          extended.push({
            tokenIds: [...beam.tokenIds, c.id],
            logprobs: [...beam.logprobs, scored],
            cumulativeLogprob,
            length: beam.length + 1,
            finishReason: 'length',
          });
        } else if (beam.tokenIds.length >= params.minTokens) {
          finished.push({
            tokenIds: params.keepEndToken ? [...beam.tokenIds, c.id] : beam.tokenIds,
            logprobs: params.keepEndToken ? [...beam.logprobs, scored] : beam.logprobs,
            cumulativeLogprob,
            length: beam.length,
            finishReason: 'stop',
            stopTokenId: c.id,
          });
        }
      }
    });
    live = ranked(extended, params.lengthPenalty).slice(0, params.width);
  }
  return ranked([...finished, ...live], params.lengthPenalty)
    .slice(0, params.width)
    .map(({ tokenIds, logprobs, cumulativeLogprob, finishReason, stopTokenId }) => ({
      tokenIds,
      logprobs,
      cumulativeLogprob,
      finishReason,
      ...(stopTokenId === undefined ? {} : { stopTokenId }),
    }));
}
