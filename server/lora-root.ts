import { realpath } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { ApiError, invalidRequest } from './api-error.js';
import type { ServingStack } from './serving-stack.js';

/**
 * --lora-root: the one folder runtime adapter loads may read from (vLLM's
 * /v1/load_lora_adapter, LoRAX's adapter_source "local"); without it they are off, as vLLM
 * gates them behind an environment variable.
 */
export function requireLoraRoot(stack: ServingStack, param: string | null = null): string {
  if (stack.loraRoot === null)
    throw new ApiError(
      403,
      'invalid_request_error',
      'runtime_lora_disabled',
      'Runtime adapter loading is off; start the server with --lora-root DIR to allow it.',
      param,
    );
  return stack.loraRoot;
}

/** The adapter directory, resolved (symlinks included) and checked to lie inside `root`. */
export async function insideLoraRoot(root: string, path: string, param: string): Promise<string> {
  const realRoot = await realpath(root);
  const wanted = isAbsolute(path) ? path : resolve(realRoot, path);
  let real: string;
  try {
    real = await realpath(wanted);
  } catch {
    throw invalidRequest(`The adapter path ${path} does not exist.`, param, 'invalid_adapter');
  }
  const rel = relative(realRoot, real);
  if (rel === '' || rel.startsWith(`..${sep}`) || rel === '..' || isAbsolute(rel))
    throw new ApiError(
      403,
      'invalid_request_error',
      'path_outside_lora_root',
      `The adapter path ${path} is outside --lora-root.`,
      param,
    );
  return real;
}
