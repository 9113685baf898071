import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ModelFormatError } from './model-format-error.js';

const ADAPTER_CONFIG_FILE = 'adapter_config.json';

/** An adapter's name as a folder entry: one plain path segment, nothing that climbs or hides. */
export function isAdapterFolderName(name: string): boolean {
  return /^[A-Za-z0-9_][A-Za-z0-9._@+-]*$/.test(name) && name !== '..' && name.length <= 255;
}

/**
 * An adapter's name as it may address the folder: one segment, or a Hugging Face Hub id's two
 * (`org/name`, a folder in a folder, as LoRAX's adapter_id and vLLM's filesystem resolver name
 * them), each plain, so that no name climbs out of the folder or reaches a hidden entry.
 */
function folderSegments(name: string): string[] | null {
  const segments = name.split('/');
  return segments.length <= 2 && segments.every(isAdapterFolderName) ? segments : null;
}

async function holdsAdapter(path: string): Promise<boolean> {
  const config = await stat(join(path, ADAPTER_CONFIG_FILE)).catch(() => null);
  return config?.isFile() ?? false;
}

/**
 * Every sub-directory of `dir` that holds an adapter_config.json, by name, and every such
 * directory one level further down in one that holds none, as `org/name` (a Hub-like layout),
 * sorted (vLLM's filesystem resolver and NIM's PEFT source serve a folder of adapters this way).
 */
export async function listAdapterFolder(dir: string): Promise<Array<{ name: string; path: string }>> {
  const info = await stat(dir).catch(() => null);
  if (!info?.isDirectory()) throw new ModelFormatError(dir, 'adapter folder does not exist');
  const found: Array<{ name: string; path: string }> = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isDirectory() || !isAdapterFolderName(entry.name)) continue;
    const path = join(dir, entry.name);
    if (await holdsAdapter(path)) {
      found.push({ name: entry.name, path });
      continue;
    }
    for (const inner of await readdir(path, { withFileTypes: true }).catch(() => [])) {
      if (!inner.isDirectory() || !isAdapterFolderName(inner.name)) continue;
      const innerPath = join(path, inner.name);
      if (await holdsAdapter(innerPath)) found.push({ name: `${entry.name}/${inner.name}`, path: innerPath });
    }
  }
  return found.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** The folder of adapter `name` under `dir` when it exists now (added after start-up included), else null. */
export async function findInAdapterFolder(dir: string, name: string): Promise<string | null> {
  const segments = folderSegments(name);
  if (!segments) return null;
  const path = join(dir, ...segments);
  return (await holdsAdapter(path)) ? path : null;
}
