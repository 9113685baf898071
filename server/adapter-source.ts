import { AdapterError } from '../memory/adapter-registry.js';
import { ApiError, echoed, invalidRequest, notSupported } from './api-error.js';
import { insideLoraRoot, requireLoraRoot } from './lora-root.js';
import type { ServingStack } from './serving-stack.js';

/** LoRAX's adapter sources: where its adapter_id points. */
export const ADAPTER_SOURCES = ['hub', 'local', 's3', 'pbase'] as const;

/** Which request fields name the adapter and its source, for errors. */
export interface AdapterFields {
  id: string;
  source: string;
}

/**
 * An adapter named the LoRAX way (its `adapter_source`) → the registered adapter's name. "hub"
 * (LoRAX's default): a registered name, since Loom downloads nothing (--lora-modules, or found in
 * --lora-dir, org/name included); "local": a path under --lora-root, loaded now and kept under
 * that name; "s3" and "pbase" download, and are refused by name.
 */
export async function resolveAdapterSource(
  stack: ServingStack,
  id: string,
  source: string,
  fields: AdapterFields,
): Promise<string> {
  if (!(ADAPTER_SOURCES as readonly string[]).includes(source))
    throw invalidRequest(
      `${fields.source} must be one of ${ADAPTER_SOURCES.join(', ')}; got ${echoed(source)}.`,
      fields.source,
    );
  if (source === 's3' || source === 'pbase')
    throw notSupported(
      fields.source,
      `${fields.source} ${source} (Loom downloads nothing: serve the adapter with --lora-modules or --lora-dir)`,
    );
  if (await stack.scheduler.adapters.resolve(id)) return id;
  if (source === 'hub')
    throw new ApiError(
      404,
      'not_found_error',
      'model_not_found',
      `The adapter \`${echoed(id)}\` is not registered. Loom downloads nothing from the Hugging Face Hub: serve it with --lora-modules NAME=PATH or put it in --lora-dir.`,
      fields.id,
    );
  const dir = await insideLoraRoot(requireLoraRoot(stack, fields.source), id, fields.id);
  try {
    await stack.scheduler.adapters.load(id, dir, false);
  } catch (error) {
    // Another request loading the same path at once: use the one it registered.
    const registered =
      error instanceof AdapterError &&
      error.kind === 'conflict' &&
      (await stack.scheduler.adapters.resolve(id));
    if (!registered) throw error;
  }
  return id;
}
