import type { LlamaConfig } from './llama-config.js';
import type { TargetModule } from './llama-modules.js';
import { ModelFormatError } from './model-format-error.js';
import { targetedModules, targetKey } from './peft-targets.js';

/** What Loom takes from a PEFT adapter_config.json. */
export interface PeftLoraConfig {
  rank: number;
  alpha: number;
  useRslora: boolean;
  /** "none", or "all"/"lora_only": those train the base's biases, so the file must hold none. */
  bias: 'none' | 'all' | 'lora_only';
  /** Whether the adapter must hold an A/B pair for this layer's module. */
  isTargeted(layer: number, module: TargetModule): boolean;
}

/** PEFT's LoraConfig default when lora_alpha is absent. */
const PEFT_DEFAULT_ALPHA = 8;

/** Unset as PEFT writes an unused option: absent, null, false, "", [] or {}. */
function isUnset(value: unknown): boolean {
  if (value === undefined || value === null || value === false || value === '') return true;
  if (Array.isArray(value)) return value.length === 0;
  if (typeof value === 'object') return Object.keys(value).length === 0;
  return false;
}

/**
 * Fields Loom reads (below, each checked) and fields that cannot change what a loaded adapter
 * computes: metadata, training-only settings (dropout, the configs of init methods that leave the
 * base untouched, VeLoRA's backward pass), and defaults of options Loom refuses when set.
 */
const READ_FIELDS = new Set([
  'peft_type',
  'task_type',
  'r',
  'lora_alpha',
  'use_rslora',
  'target_modules',
  'exclude_modules',
  'layers_to_transform',
  'layers_pattern',
  'bias',
  'init_lora_weights',
  'lora_bias',
  'rank_pattern',
  'alpha_pattern',
]);
const HARMLESS_FIELDS = new Set([
  'base_model_name_or_path',
  'revision',
  'inference_mode',
  'auto_mapping',
  'peft_version',
  'lora_dropout',
  'runtime_config',
  'eva_config',
  'corda_config',
  'lora_ga_config',
  'loftq_config',
  'velora_config',
  'ensure_weight_tying',
  'megatron_core',
  'qalora_group_size',
]);
/** Fields whose set value changes the adapter's math in ways Loom does not implement, with why. */
const REFUSED_WHEN_SET: Record<string, string> = {
  alora_invocation_tokens:
    'makes it an activated LoRA (aLoRA), applied only from its invocation tokens on; Loom applies adapters to every token',
  use_dora: 'makes it a DoRA adapter (a learned magnitude per output), which Loom does not implement',
  modules_to_save: 'replaces whole base modules with trained copies, which Loom does not load',
  layer_replication: 'stacks repeated base layers, which Loom does not build',
  fan_in_fan_out: 'is for Conv1D (GPT-2-style) weights; Llama layers are nn.Linear',
  target_parameters: 'adapts raw parameters (MoE experts), which Loom does not',
  trainable_token_indices: 'trains embedding rows, which Loom does not load',
  use_qalora: 'makes it a QA-LoRA adapter (pooled inputs), which Loom does not implement',
  megatron_config: 'targets Megatron parallel layers',
  use_bdlora: 'makes it a block-diagonal BD-LoRA adapter, which Loom does not implement',
  arrow_config: 'routes between adapters (Arrow), which Loom does not implement',
  kasa_config: 'adds KaSA singular values between A and B, which Loom does not implement',
  monteclora_config: 'samples the adapter (MonteCLoRA), which Loom does not implement',
};

/**
 * init_lora_weights values after which PEFT rewrites the base weights when it loads the adapter
 * (PiSSA, CorDA, OLoRA subtract the initial adapter; LoftQ quantizes the base), so the adapter
 * is only right on that rewritten base. PEFT documents saving them converted instead.
 */
function rewritesBase(init: string): boolean {
  const lower = init.toLowerCase();
  return lower.startsWith('pissa') || lower.startsWith('corda') || lower === 'olora' || lower === 'loftq';
}
/** Init methods that only choose A/B's starting values, which the saved weights replace. */
const INIT_WITHOUT_BASE_CHANGE = new Set(['gaussian', 'eva', 'orthogonal', 'mica', 'lora_ga']);

function checkInit(file: string, init: unknown): void {
  if (init === undefined || init === null || typeof init === 'boolean') return;
  if (typeof init !== 'string') {
    throw new ModelFormatError(
      file,
      `"init_lora_weights" must be true, false or a method name, got ${JSON.stringify(init)}`,
    );
  }
  if (rewritesBase(init)) {
    throw new ModelFormatError(
      file,
      `"init_lora_weights" is "${init}": PEFT rewrites the base weights when loading such an adapter; save it converted to plain LoRA (save_pretrained with path_initial_model_for_weight_conversion) and serve that`,
    );
  }
  if (!INIT_WITHOUT_BASE_CHANGE.has(init.toLowerCase())) {
    throw new ModelFormatError(
      file,
      `"init_lora_weights" is "${init}", an initialisation Loom does not know`,
    );
  }
}

/** Validates adapter_config.json against Loom's LoRA support and the base model. */
export function parsePeftConfig(
  file: string,
  raw: Record<string, unknown>,
  config: LlamaConfig,
): PeftLoraConfig {
  const fail = (problem: string) => new ModelFormatError(file, problem);

  if (raw.peft_type !== undefined && raw.peft_type !== 'LORA') {
    throw fail(`peft_type "${String(raw.peft_type)}" is not supported (LORA only)`);
  }
  if (!isUnset(raw.task_type) && raw.task_type !== 'CAUSAL_LM') {
    throw fail(
      `task_type "${String(raw.task_type)}" is not supported (CAUSAL_LM: Loom serves causal language models)`,
    );
  }
  for (const [key, value] of Object.entries(raw)) {
    if (READ_FIELDS.has(key) || HARMLESS_FIELDS.has(key) || isUnset(value)) continue;
    const why = REFUSED_WHEN_SET[key];
    throw fail(
      why ? `"${key}" is set: it ${why}` : `"${key}" is set, and Loom does not know what it changes`,
    );
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
    if (!isUnset(raw[key])) throw fail(`"${key}" (per-module ranks or alphas) is not supported`);
  }
  if (raw.lora_bias === true) {
    throw fail(
      '"lora_bias" is true: its lora_B layers carry a bias vector added to the output, and Loom applies only B·A',
    );
  }
  const bias = raw.bias ?? 'none';
  if (bias !== 'none' && bias !== 'all' && bias !== 'lora_only') {
    throw fail(`"bias" must be "none", "all" or "lora_only", got ${JSON.stringify(bias)}`);
  }
  if (raw.use_rslora !== undefined && raw.use_rslora !== null && typeof raw.use_rslora !== 'boolean') {
    throw fail(`"use_rslora" must be true or false, got ${JSON.stringify(raw.use_rslora)}`);
  }
  checkInit(file, raw.init_lora_weights);

  const targeted = targetedModules(file, raw, config);
  return {
    rank,
    alpha,
    useRslora: raw.use_rslora === true,
    bias,
    isTargeted: (layer, module) => targeted.has(targetKey(layer, module)),
  };
}
