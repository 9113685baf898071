import { existsSync } from 'node:fs';
import { link, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { TensorDtype } from '../../model/float-convert.js';
import { TARGET_MODULES } from '../../model/llama-modules.js';
import { type SyntheticModelSpec, syntheticConfig, writeSyntheticAdapter } from '../../model/synthetic.js';

/** Distinct weight files per rank mix; the other adapters are hard links to them under their own names. */
export const DISTINCT_FILES = 16;
/** S-LoRA's S2-like mix. */
export const MIXED_RANKS = [8, 16, 32, 64];
export type RankMix = 'uniform' | 'mixed';

/**
 * A folder of n adapters for one rank mix: DISTINCT_FILES written in `dtype` (PEFT saves the
 * dtype it trained in, often bf16), the rest hard-linked.
 */
export async function adapterFolder(
  root: string,
  spec: SyntheticModelSpec,
  mix: RankMix,
  n: number,
  dtype: TensorDtype = 'F32',
): Promise<string> {
  const config = syntheticConfig(spec);
  const sources = join(root, `${mix}-${dtype}-sources`);
  const folder = join(root, `${mix}-${dtype}-${n}`);
  for (let i = 0; i < DISTINCT_FILES; i++) {
    const dir = join(sources, `s${i}`);
    if (existsSync(join(dir, 'adapter_model.safetensors'))) continue;
    await writeSyntheticAdapter(
      dir,
      config,
      {
        name: `s${i}`,
        rank: mix === 'uniform' ? 8 : MIXED_RANKS[i % MIXED_RANKS.length],
        alpha: 16,
        targetModules: [...TARGET_MODULES],
        seed: 1000 + i,
      },
      'loom-synthetic',
      dtype,
    );
  }
  for (let i = 0; i < n; i++) {
    const dir = join(folder, `lora-${String(i).padStart(4, '0')}`);
    await mkdir(dir, { recursive: true });
    const source = join(sources, `s${i % DISTINCT_FILES}`);
    for (const file of ['adapter_config.json', 'adapter_model.safetensors'])
      await link(join(source, file), join(dir, file)).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'EEXIST') throw error;
      });
  }
  return folder;
}
