/**
 * LoRAX's `watermark` (TGI's, after Kirchenbauer et al. 2023, "A Watermark for Large Language
 * Models"): before each token is chosen, a "green" share `gamma` of the vocabulary gets `delta`
 * added to its logits, the green list drawn from a generator seeded by the token before it. A
 * detector that draws the same lists finds far more green tokens in watermarked text than chance
 * gives.
 *
 * The lists are drawn as PyTorch draws them on a CPU device: `torch.Generator().manual_seed(
 * 15485863 × previous token)` (a Mersenne Twister seeded with the low 32 bits), then
 * `torch.randperm(vocab)` (Fisher–Yates with the generator's 32-bit draws), the first
 * ⌊vocab·gamma⌋ ids green. That is TGI's processor on CPU and the reference detector
 * (lm-watermarking's WatermarkDetector) with device="cpu". LoRAX on a GPU draws with CUDA's
 * generator instead, whose lists differ: text from one is not detected with the other's lists.
 */

/** TGI's hash key: a large prime, so the seeds of neighbouring tokens are far apart. */
export const WATERMARK_HASH_KEY = 15485863;
/** TGI's defaults (its launcher's --watermark-gamma and --watermark-delta). */
export const DEFAULT_WATERMARK = { gamma: 0.5, delta: 2 } as const;

export interface WatermarkParams {
  /** The green share of the vocabulary. */
  gamma: number;
  /** Added to each green token's logit. */
  delta: number;
  /** The width of the model's logits rows (config.json's vocab_size), which the permutation covers. */
  vocabSize: number;
}

const N = 624;
const M = 397;

/** MT19937 as PyTorch's CPU generator runs it (the C++ standard's mt19937, seeded with 32 bits). */
export class Mt19937 {
  private readonly state = new Uint32Array(N);
  private next = N;

  constructor(seed: number | bigint) {
    const s = this.state;
    s[0] = Number(BigInt(seed) & 0xffffffffn);
    for (let j = 1; j < N; j++) {
      const prev = s[j - 1] ^ (s[j - 1] >>> 30);
      // 1812433253 · prev + j, modulo 2^32 (Math.imul keeps the low 32 bits).
      s[j] = (Math.imul(1812433253, prev) + j) >>> 0;
    }
  }

  /** The next 32-bit draw (the generator's random()). */
  random(): number {
    if (this.next >= N) this.twist();
    let y = this.state[this.next++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  private twist(): void {
    const s = this.state;
    const mix = (k: number, k1: number, km: number) => {
      const y = (s[k] & 0x80000000) | (s[k1] & 0x7fffffff);
      s[k] = s[km] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
    };
    let k = 0;
    for (; k < N - M; k++) mix(k, k + 1, k + M);
    for (; k < N - 1; k++) mix(k, k + 1, k + M - N);
    mix(N - 1, 0, M - 1);
    this.next = 0;
  }
}

/** torch.randperm(n, generator) on a CPU device, for n below 2^32/20 (its Fisher–Yates path). */
export function torchRandperm(n: number, rng: Mt19937): Int32Array {
  if (n >= 0xffffffff / 20) throw new RangeError(`randperm of ${n}: only n below 2^32/20 is drawn this way`);
  const perm = new Int32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  for (let i = 0; i < n - 1; i++) {
    const z = rng.random() % (n - i);
    const saved = perm[i];
    perm[i] = perm[z + i];
    perm[z + i] = saved;
  }
  return perm;
}

/** A green list: its ids in the order the permutation drew them, and each id's place in it (−1: red). */
export interface GreenList {
  ids: Int32Array;
  position: Int32Array;
}

/** Recent green lists: one per previous token, and a decode step asks again for the same few. */
const cache = new Map<string, GreenList>();
const CACHE_ENTRIES = 64;

/** The green list after `previousToken`. */
export function greenList(previousToken: number, vocabSize: number, gamma: number): GreenList {
  const key = `${previousToken}/${vocabSize}/${gamma}`;
  let green = cache.get(key);
  if (green) {
    // Most recently used last, so the first entry is the one to drop.
    cache.delete(key);
    cache.set(key, green);
    return green;
  }
  const rng = new Mt19937(BigInt(WATERMARK_HASH_KEY) * BigInt(previousToken));
  const ids = torchRandperm(vocabSize, rng).slice(0, Math.floor(vocabSize * gamma));
  const position = new Int32Array(vocabSize).fill(-1);
  ids.forEach((id, i) => {
    position[id] = i;
  });
  green = { ids, position };
  if (cache.size >= CACHE_ENTRIES) cache.delete(cache.keys().next().value as string);
  cache.set(key, green);
  return green;
}
