import { LinearRegex, RegexSyntaxError } from './linear-regex.js';
import type { LlamaConfig } from './llama-config.js';
import { moduleWeightName, TARGET_MODULES, type TargetModule } from './llama-modules.js';
import { ModelFormatError } from './model-format-error.js';

/** One entry of LlamaForCausalLM's `named_modules()`, the names PEFT matches its patterns against. */
interface ModuleName {
  name: string;
  /** Set for the seven linear layers of each decoder layer, the ones Loom adapts. */
  target?: { layer: number; module: TargetModule };
}

/** Every module name of a transformers LlamaForCausalLM with this config, root ("") included. */
function llamaModuleNames(config: LlamaConfig): ModuleName[] {
  const names: ModuleName[] = [
    { name: '' },
    { name: 'model' },
    { name: 'model.embed_tokens' },
    { name: 'model.layers' },
  ];
  for (let layer = 0; layer < config.numLayers; layer++) {
    const prefix = `model.layers.${layer}`;
    names.push({ name: prefix }, { name: `${prefix}.self_attn` }, { name: `${prefix}.mlp` });
    for (const module of TARGET_MODULES) {
      names.push({
        name: moduleWeightName(layer, module).slice(0, -'.weight'.length),
        target: { layer, module },
      });
    }
    names.push(
      { name: `${prefix}.mlp.act_fn` },
      { name: `${prefix}.input_layernorm` },
      { name: `${prefix}.post_attention_layernorm` },
    );
  }
  names.push({ name: 'model.norm' }, { name: 'model.rotary_emb' }, { name: 'lm_head' });
  return names;
}

/** A module-name test built from a PEFT `target_modules` / `exclude_modules` value. */
type NameTest = (name: string) => boolean;

/**
 * PEFT's matching (`check_target_module_exists`): a string is `re.fullmatch`ed against the name
 * (here by a linear-time matcher, see linear-regex.ts); a list matches a name equal to an entry
 * or ending in "." + entry.
 */
function nameTest(file: string, field: string, value: unknown): NameTest {
  if (typeof value === 'string') {
    let regex: LinearRegex;
    try {
      regex = new LinearRegex(value);
    } catch (err) {
      if (!(err instanceof RegexSyntaxError)) throw err;
      throw new ModelFormatError(
        file,
        `${field} regex ${JSON.stringify(value)} cannot be used: ${err.message}`,
      );
    }
    return (name) => regex.fullMatch(name);
  }
  if (!Array.isArray(value) || !value.every((entry) => typeof entry === 'string')) {
    throw new ModelFormatError(
      file,
      `${field} must be a string or a list of strings, got ${JSON.stringify(value)}`,
    );
  }
  const entries = value as string[];
  return (name) => entries.some((entry) => name === entry || name.endsWith(`.${entry}`));
}

/** The layer index PEFT reads from a module name for layers_to_transform (`.*?\.{pattern}\.(\d+)\.`). */
function layerIndexOf(name: string, layersPattern: string[] | null): number | null {
  const segments = name.split('.');
  for (let i = 1; i + 2 <= segments.length - 1; i++) {
    if (!/^\d+$/.test(segments[i + 1])) continue;
    if (layersPattern === null || layersPattern.includes(segments[i])) return Number(segments[i + 1]);
  }
  return null;
}

function layerSelection(file: string, raw: Record<string, unknown>): ((name: string) => boolean) | null {
  const layers = raw.layers_to_transform;
  if (layers === undefined || layers === null || (Array.isArray(layers) && layers.length === 0)) return null;
  const list = typeof layers === 'number' ? [layers] : layers;
  if (!Array.isArray(list) || !list.every((l) => Number.isInteger(l) && l >= 0)) {
    throw new ModelFormatError(
      file,
      `layers_to_transform ${JSON.stringify(layers)} is not a list of layer numbers`,
    );
  }
  const pattern = raw.layers_pattern;
  let patterns: string[] | null = null;
  if (
    pattern !== undefined &&
    pattern !== null &&
    !(Array.isArray(pattern) && pattern.length === 0) &&
    pattern !== ''
  ) {
    patterns = typeof pattern === 'string' ? [pattern] : (pattern as string[]);
    // PEFT splices the pattern into a regex; plain names are all a Llama model has to offer.
    if (
      !Array.isArray(patterns) ||
      !patterns.every((p) => typeof p === 'string' && /^[A-Za-z0-9_]+$/.test(p))
    ) {
      throw new ModelFormatError(
        file,
        `layers_pattern ${JSON.stringify(pattern)} must name the layer list (e.g. "layers")`,
      );
    }
  }
  const wanted = new Set(list as number[]);
  return (name) => {
    const index = layerIndexOf(name, patterns);
    return index !== null && wanted.has(index);
  };
}

/**
 * The set of (layer, module) pairs a PEFT LoRA config adapts on this base model, decided as PEFT
 * decides it over LlamaForCausalLM's module names. A pattern that would make PEFT adapt a module
 * Loom cannot (lm_head, embed_tokens) or fail (a norm, a container) is refused by name.
 */
export function targetedModules(
  file: string,
  raw: Record<string, unknown>,
  config: LlamaConfig,
): Set<string> {
  const targets = raw.target_modules;
  const allLinear = typeof targets === 'string' && targets.toLowerCase() === 'all-linear';
  if (targets === undefined || targets === null || (Array.isArray(targets) && targets.length === 0)) {
    throw new ModelFormatError(
      file,
      '"target_modules" must be a non-empty list of module names, a regex or "all-linear"',
    );
  }
  if (typeof targets === 'string' && !allLinear && raw.layers_to_transform != null) {
    throw new ModelFormatError(
      file,
      'layers_to_transform cannot be used with a regex target_modules (PEFT refuses it too)',
    );
  }
  const isTarget: NameTest = allLinear ? () => true : nameTest(file, 'target_modules', targets);
  const exclude = raw.exclude_modules;
  const isExcluded: NameTest =
    exclude === undefined || exclude === null || (Array.isArray(exclude) && exclude.length === 0)
      ? () => false
      : nameTest(file, 'exclude_modules', exclude);
  // PEFT applies layers_to_transform to list targets, and all-linear becomes such a list.
  const inLayers = typeof targets === 'string' && !allLinear ? null : layerSelection(file, raw);

  const out = new Set<string>();
  for (const { name, target } of llamaModuleNames(config)) {
    if (isExcluded(name)) continue;
    if (allLinear ? !target : !isTarget(name)) continue;
    if (inLayers && !inLayers(name)) continue;
    if (!target) {
      throw new ModelFormatError(
        file,
        `target_modules selects "${name}", which Loom cannot adapt (only ${TARGET_MODULES.join(', ')} of each decoder layer)`,
      );
    }
    out.add(targetKey(target.layer, target.module));
  }
  if (out.size === 0) {
    throw new ModelFormatError(
      file,
      `target_modules ${JSON.stringify(targets)} selects none of the model's linear layers`,
    );
  }
  return out;
}

export function targetKey(layer: number, module: TargetModule): string {
  return `${layer}.${module}`;
}
