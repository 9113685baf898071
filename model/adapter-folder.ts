import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ModelFormatError } from './model-format-error.js';

const ADAPTER_CONFIG_FILE = 'adapter_config.json';

/** An adapter's name as a folder entry: one plain path segment, nothing that climbs or hides. */
export function isAdapterFolderName(name: string): boolean {
  return /^[A-Za-z0-9_][A-Za-z0-9._@+-]*$/.test(name) && name !== '..' && name.length <= 255;
}

/**
 * Every sub-directory of `dir` that holds an adapter_config.json, by name, sorted (vLLM's
 * filesystem resolver and NIM's PEFT source serve a folder of adapters this way).
 */
export async function listAdapterFolder(dir: string): Promise<Array<{ name: string; path: string }>> {
  const info = await stat(dir).catch(() => null);
  if (!info?.isDirectory()) throw new ModelFormatError(dir, 'adapter folder does not exist');
  const entries = await readdir(dir, { withFileTypes: true });
  const found: Array<{ name: string; path: string }> = [];
  for (const entry of entries) {
    if (!entry.isDirectory() || !isAdapterFolderName(entry.name)) continue;
    const path = join(dir, entry.name);
    const config = await stat(join(path, ADAPTER_CONFIG_FILE)).catch(() => null);
    if (config?.isFile()) found.push({ name: entry.name, path });
  }
  return found.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** The folder of adapter `name` under `dir` when it exists now (added after start-up included), else null. */
export async function findInAdapterFolder(dir: string, name: string): Promise<string | null> {
  if (!isAdapterFolderName(name)) return null;
  const path = join(dir, name);
  const config = await stat(join(path, ADAPTER_CONFIG_FILE)).catch(() => null);
  return config?.isFile() ? path : null;
}
