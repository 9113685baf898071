import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StartupError } from './startup-error.js';

/**
 * The embedded default model: a small Llama trained by `training/train_default_model.py` on
 * Debian's public-domain text, with one demo adapter per sub-corpus, committed under
 * `model/default/` with a SHA256SUMS file. `npm start` serves it when no --model is given.
 */
export const DEFAULT_MODEL_ROOT = fileURLToPath(new URL('./default/', import.meta.url));
export const DEFAULT_MODEL_NAME = 'loom-default';
const CHECKSUM_FILE = 'SHA256SUMS';

/** The demo adapters, each trained on one sub-corpus (ranks 4, 8, 16, 32; different target modules). */
export const DEMO_ADAPTER_NAMES = ['bible', 'fortunes', 'jargon', 'devil'] as const;

export interface DefaultModelPaths {
  modelDir: string;
  adapters: { name: string; dir: string }[];
}

export function defaultModelPaths(root = DEFAULT_MODEL_ROOT): DefaultModelPaths {
  return {
    modelDir: join(root, DEFAULT_MODEL_NAME),
    adapters: DEMO_ADAPTER_NAMES.map((name) => ({ name, dir: join(root, 'adapters', name) })),
  };
}

/** `sha256sum`'s lines: 64 hex digits, two spaces (or space and `*`), a path relative to the root. */
function parseChecksums(text: string, file: string): Map<string, string> {
  const sums = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const match = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (!match) throw new StartupError(`${file}: not a sha256sum line: ${JSON.stringify(line.slice(0, 80))}`);
    sums.set(match[2], match[1]);
  }
  return sums;
}

/**
 * The default model's paths, after checking every file SHA256SUMS lists against its digest, so a
 * checkout with a damaged or half-fetched weight file (a Git LFS pointer, a bad merge) is refused
 * with one line instead of serving different numbers.
 */
export async function verifyDefaultModel(root = DEFAULT_MODEL_ROOT): Promise<DefaultModelPaths> {
  const checksumPath = join(root, CHECKSUM_FILE);
  const listing = await readFile(checksumPath, 'utf8').catch(() => null);
  if (listing === null)
    throw new StartupError(`${checksumPath}: missing; the embedded default model cannot be checked`);
  const sums = parseChecksums(listing, checksumPath);
  for (const [relative, expected] of sums) {
    const data = await readFile(join(root, relative)).catch(() => null);
    if (data === null)
      throw new StartupError(`embedded default model: ${relative} is missing (listed in ${checksumPath})`);
    const actual = createHash('sha256').update(data).digest('hex');
    if (actual !== expected)
      throw new StartupError(
        `embedded default model: ${relative} has SHA-256 ${actual.slice(0, 12)}…, ${CHECKSUM_FILE} says ${expected.slice(0, 12)}…; restore it (git checkout -- model/default) or retrain with training/train_default_model.py`,
      );
  }
  const paths = defaultModelPaths(root);
  const required = [
    'loom-default/config.json',
    'loom-default/model.safetensors',
    'loom-default/tokenizer.json',
    ...DEMO_ADAPTER_NAMES.flatMap((name) => [
      `adapters/${name}/adapter_config.json`,
      `adapters/${name}/adapter_model.safetensors`,
    ]),
  ];
  const unlisted = required.filter((file) => !sums.has(file));
  if (unlisted.length > 0) throw new StartupError(`${checksumPath}: does not list ${unlisted.join(', ')}`);
  return paths;
}
