import { access } from 'node:fs/promises';

/** Whether `path` can be reached; a missing file is an answer here, not an error. */
export async function fileExists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
