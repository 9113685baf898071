import { constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { ModelFormatError } from './model-format-error.js';

/** config.json, adapter_config.json and the like: real ones are kilobytes (a chat template or two). */
export const MAX_CONFIG_BYTES = 16 * 1024 * 1024;
/** tokenizer.json: the biggest real ones (256k-token vocabularies with merges) are ~35 MB. */
export const MAX_TOKENIZER_BYTES = 256 * 1024 * 1024;

function errnoText(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? String(err);
}

/**
 * Opens a file for reading without blocking on special files: O_NONBLOCK makes opening a FIFO
 * return at once (a plain open would wait for a writer forever), and anything that is not a
 * regular file is then refused. Returns null for a missing file when `optional`.
 */
export async function openRegularFile(file: string, optional: boolean): Promise<FileHandle | null> {
  let handle: FileHandle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      if (optional) return null;
      throw new ModelFormatError(file, 'is missing');
    }
    throw new ModelFormatError(file, `cannot read: ${errnoText(err)}`);
  }
  const info = await handle.stat();
  if (!info.isFile()) {
    await handle.close();
    throw new ModelFormatError(file, 'is not a regular file');
  }
  return handle;
}

/** A whole text file, refused past `maxBytes` before anything is read. */
export async function readBoundedText(
  file: string,
  maxBytes: number,
  optional: boolean,
): Promise<string | null> {
  const handle = await openRegularFile(file, optional);
  if (!handle) return null;
  try {
    const { size } = await handle.stat();
    if (size > maxBytes) {
      throw new ModelFormatError(
        file,
        `is ${size} bytes, more than the ${maxBytes} bytes such a file may have`,
      );
    }
    // Read one byte more than the limit, so a file that grows while read is still caught.
    const buffer = Buffer.alloc(Math.min(maxBytes + 1, size + 1));
    let done = 0;
    while (done < buffer.length) {
      const { bytesRead } = await handle.read(buffer, done, buffer.length - done, done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    if (done > maxBytes) {
      throw new ModelFormatError(file, `is more than the ${maxBytes} bytes such a file may have`);
    }
    return buffer.subarray(0, done).toString('utf8');
  } catch (err) {
    if (err instanceof ModelFormatError) throw err;
    throw new ModelFormatError(file, `cannot read: ${errnoText(err)}`);
  } finally {
    await handle.close();
  }
}

/** A JSON file whose top level must be an object; every problem names the file. */
export async function readJsonObject(
  file: string,
  options: { optional: boolean; maxBytes?: number },
): Promise<Record<string, unknown> | null> {
  const text = await readBoundedText(file, options.maxBytes ?? MAX_CONFIG_BYTES, options.optional);
  if (text === null) return null;
  return parseJsonObject(file, text);
}

export function parseJsonObject(file: string, text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ModelFormatError(file, `is not valid JSON (${(err as Error).message})`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new ModelFormatError(file, 'is not a JSON object');
  }
  return value as Record<string, unknown>;
}
