import type { LlamaConfig } from './llama-config.js';
import { isTargetModule, moduleWeightName, TARGET_MODULES, type TargetModule } from './llama-modules.js';
import { ModelFormatError } from './model-format-error.js';

/** What Loom takes from a PEFT adapter_config.json. */
export interface PeftLoraConfig {
  rank: number;
  alpha: number;
  useRslora: boolean;
  /** Whether the adapter must hold an A/B pair for this layer's module. */
  isTargeted(layer: number, module: TargetModule): boolean;
}

/** PEFT's LoraConfig default when lora_alpha is absent. */
const PEFT_DEFAULT_ALPHA = 8;

function isEmpty(value: unknown): boolean {
  if (value === undefined || value === null || value === false) return true;
  if (Array.isArray(value)) return value.length === 0;
  if (typeof value === 'object') return Object.keys(value).length === 0;
  return false;
}

/** A target_modules entry names a module by its last dotted segments ("q_proj", "self_attn.q_proj"). */
function moduleOfEntry(file: string, entry: unknown): TargetModule {
  if (typeof entry !== 'string')
    throw new ModelFormatError(file, `target_modules entry ${JSON.stringify(entry)} is not a string`);
  const last = entry.split('.').pop()!;
  if (!isTargetModule(last)) {
    throw new ModelFormatError(
      file,
      `target module "${entry}" is not supported (Loom applies LoRA to ${TARGET_MODULES.join(', ')})`,
    );
  }
  return last;
}

function layerSet(file: string, raw: unknown, numLayers: number): Set<number> {
  if (raw === undefined || raw === null) return new Set(Array.from({ length: numLayers }, (_, l) => l));
  const list = typeof raw === 'number' ? [raw] : raw;
  if (!Array.isArray(list) || !list.every((l) => Number.isInteger(l) && l >= 0 && l < numLayers)) {
    throw new ModelFormatError(
      file,
      `layers_to_transform ${JSON.stringify(raw)} is not a list of layer numbers below ${numLayers}`,
    );
  }
  return new Set(list as number[]);
}

/** Where PEFT accepts a string that is not "all-linear", it full-matches it as a regex on module names. */
function regexTargets(file: string, pattern: string): (layer: number, module: TargetModule) => boolean {
  let re: RegExp;
  try {
    re = new RegExp(`^(?:${pattern})$`);
  } catch (err) {
    throw new ModelFormatError(
      file,
      `target_modules regex ${JSON.stringify(pattern)} is invalid (${(err as Error).message})`,
    );
  }
  return (layer, module) => re.test(moduleWeightName(layer, module).slice(0, -'.weight'.length));
}

/** Validates adapter_config.json against Loom's LoRA support and the base model. */
export function parsePeftConfig(file: string, text: string, config: LlamaConfig): PeftLoraConfig {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new ModelFormatError(file, `is not valid JSON (${(err as Error).message})`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw))
    throw new ModelFormatError(file, 'is not a JSON object');
  const fail = (problem: string) => new ModelFormatError(file, problem);

  if (raw.peft_type !== undefined && raw.peft_type !== 'LORA') {
    throw fail(`peft_type "${String(raw.peft_type)}" is not supported (LORA only)`);
  }
  const rank = raw.r;
  if (typeof rank !== 'number' || !Number.isInteger(rank) || rank <= 0) {
    throw fail(`"r" must be a positive integer, got ${JSON.stringify(rank)}`);
  }
  const alpha = raw.lora_alpha ?? PEFT_DEFAULT_ALPHA;
  if (typeof alpha !== 'number' || !Number.isFinite(alpha)) {
    throw fail(`"lora_alpha" must be a number, got ${JSON.stringify(alpha)}`);
  }
  for (const key of ['rank_pattern', 'alpha_pattern']) {
    if (!isEmpty(raw[key])) throw fail(`"${key}" (per-module ranks or alphas) is not supported`);
  }
  for (const key of ['use_dora', 'modules_to_save', 'layer_replication', 'fan_in_fan_out']) {
    if (!isEmpty(raw[key])) throw fail(`"${key}" is set, which Loom does not support`);
  }
  if (raw.bias !== undefined && raw.bias !== 'none') {
    throw fail(`"bias" is "${String(raw.bias)}"; Loom supports only "none"`);
  }
  if (raw.use_rslora !== undefined && typeof raw.use_rslora !== 'boolean') {
    throw fail(`"use_rslora" must be true or false, got ${JSON.stringify(raw.use_rslora)}`);
  }

  const targets = raw.target_modules;
  let isTargeted: (layer: number, module: TargetModule) => boolean;
  if (targets === 'all-linear') {
    const layers = layerSet(file, raw.layers_to_transform, config.numLayers);
    isTargeted = (layer) => layers.has(layer);
  } else if (typeof targets === 'string') {
    isTargeted = regexTargets(file, targets);
  } else if (Array.isArray(targets) && targets.length > 0) {
    const modules = new Set(targets.map((t) => moduleOfEntry(file, t)));
    const layers = layerSet(file, raw.layers_to_transform, config.numLayers);
    isTargeted = (layer, module) => layers.has(layer) && modules.has(module);
  } else {
    throw fail(`"target_modules" must be a non-empty list of module names or "all-linear"`);
  }
  return { rank, alpha, useRslora: raw.use_rslora === true, isTargeted };
}
