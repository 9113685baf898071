import { chmod, lstat, unlink } from 'node:fs/promises';
import { CliError } from './cli-error.js';

/**
 * vLLM's --uds serves on a Unix domain socket as uvicorn does: a socket file left by an earlier
 * run is replaced (asyncio's create_unix_server does the same), anything else at the path is
 * refused rather than deleted.
 */
export async function clearSocketPath(path: string): Promise<void> {
  const existing = await lstat(path).catch(() => null);
  if (!existing) return;
  if (!existing.isSocket()) throw new CliError(`--uds ${path}: something other than a socket is there`);
  await unlink(path);
}

/** uvicorn opens a new socket to every local user (0o666): access is the directory's to limit. */
export async function openSocketToLocalUsers(path: string): Promise<void> {
  await chmod(path, 0o666);
}
