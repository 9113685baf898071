import { stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { Checkpoint } from './checkpoint.js';
import { readJsonObject } from './config-file.js';
import { backLinearWeightsByFiles } from './file-backed-weights.js';
import { checkFiniteWeights } from './finite-check.js';
import {
  checkLinearWeightsInBackground,
  checkLinearWeightsNow,
  type FiniteScanJob,
} from './linear-weight-check.js';
import { ConfigError, type LlamaConfig, parseLlamaConfig } from './llama-config.js';
import { moduleWeightName } from './llama-modules.js';
import { ModelFormatError } from './model-format-error.js';
import { assembleWeights, EMBED_NAME, expectedModelTensors, LM_HEAD_NAME } from './model-tensors.js';
import type { ModelWeights } from './model-weights.js';
import { isReadableDtype, type TensorFileRef } from './safetensors.js';
import { TextTokenizer } from './tokenizer.js';

export interface LoadedModel {
  /** The directory's base name; callers may serve it under another name. */
  name: string;
  dir: string;
  /** The config.json `config` was read from (the model's, or --hf-config-path's). */
  configFile: string;
  config: LlamaConfig;
  weights: ModelWeights;
  tokenizer: TextTokenizer;
  /**
   * Settles when the F32 linear weights left in their files are checked (finite, within ±2^64):
   * at once unless `linearWeightCheck` is 'background'; rejects with a ModelFormatError naming
   * the first bad weight. Serve nothing before it resolves.
   */
  linearWeightsChecked: Promise<void>;
}

export interface LoadModelOptions {
  /** --chat-template: a Jinja chat template file, or the template itself (loadChatTemplate), replacing the tokenizer's. */
  chatTemplateFile?: string;
  /** The directory the tokenizer files come from (vLLM's --tokenizer); default the model's. */
  tokenizerDir?: string;
  /** The directory config.json comes from (vLLM's --hf-config-path); default the model's. */
  configDir?: string;
  /** config.json's keys replaced by these (vLLM's --hf-overrides), before the config is read. */
  hfOverrides?: Readonly<Record<string, unknown>>;
  /** Called as each safetensors file's tensors have been read and checked. */
  onFileRead?: (progress: FileReadProgress) => void;
  /**
   * When the F32 linear weights that stay in their files (fileBackedBytes) are checked: 'now'
   * (default), before loadModel returns; or 'background', on a worker thread, while the caller
   * builds its engine (`linearWeightsChecked`).
   */
  linearWeightCheck?: 'now' | 'background';
}

/** One safetensors file's part of loading: what start-up progress lines report. */
export interface FileReadProgress {
  file: string;
  /** The file's tensors the model uses. */
  tensors: number;
  /** Their bytes on disk. */
  bytes: number;
  seconds: number;
  /** Bytes left in the file for an engine to map (F32 linear weights), not copied to the host. */
  fileBackedBytes: number;
  /** Whether those were checked already, or are checked in the background (LoadedModel.linearWeightsChecked). */
  fileBackedChecked: 'now' | 'background';
}

/**
 * config.json (+ generation_config.json) → LlamaConfig, with problems reported as ModelFormatError.
 * `overrides` replace config.json's top-level keys, as vLLM's --hf-overrides update the HF config
 * (a Llama config has no sub-configs to merge into); a problem then names the flag too.
 */
export async function loadLlamaConfig(
  dir: string,
  overrides: Readonly<Record<string, unknown>> = {},
  configDir = dir,
): Promise<LlamaConfig> {
  const fileOnDisk = join(configDir, 'config.json');
  const raw = { ...(await readJsonObject(fileOnDisk, { optional: false }))!, ...overrides };
  const configFile = Object.keys(overrides).length > 0 ? `${fileOnDisk} (with --hf-overrides)` : fileOnDisk;
  const generation = (await readJsonObject(join(dir, 'generation_config.json'), { optional: true })) ?? {};
  try {
    return parseLlamaConfig(raw, configFile, generation);
  } catch (err) {
    if (err instanceof ConfigError) {
      throw new ModelFormatError(configFile, err.message.slice(configFile.length + 2));
    }
    throw err;
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

const LAYER_TENSOR = /^model\.layers\.(\d+)\./;

/**
 * config.json's num_hidden_layers against the layers the checkpoint holds, before anything is
 * sized by it: a corrupt count (1e9) must be refused at once, not after building 9e9 names.
 */
function checkLayerCount(checkpoint: Checkpoint, config: LlamaConfig, configFile: string): void {
  let layers = 0;
  for (const name of checkpoint.names()) {
    const m = LAYER_TENSOR.exec(name);
    if (m) layers = Math.max(layers, Number(m[1]) + 1);
  }
  if (config.numLayers > layers) {
    throw new ModelFormatError(
      configFile,
      `num_hidden_layers is ${config.numLayers} but ${checkpoint.source} holds ${layers} layers`,
    );
  }
}

/** Every tensor the config implies is there, with its shape and a dtype Loom reads. */
function checkTensors(checkpoint: Checkpoint, config: LlamaConfig): void {
  // Loom's layer has no linear biases; ignoring them (as Qwen2's q/k/v biases) would be silently wrong.
  const bias = checkpoint.names().find((name) => /_proj\.bias$/.test(name));
  if (bias) {
    throw new ModelFormatError(
      checkpoint.find(bias)!.file,
      `tensor "${bias}" is a linear-layer bias, which Loom's Llama layer does not support`,
    );
  }
  for (const expected of expectedModelTensors(config)) {
    const found = checkpoint.find(expected.name);
    if (!found) {
      const why =
        expected.name === LM_HEAD_NAME
          ? ' (config.json says tie_word_embeddings is false, so it is needed)'
          : '';
      throw new ModelFormatError(checkpoint.source, `tensor "${expected.name}" is missing${why}`);
    }
    const { file, info } = found;
    if (!sameShape(info.shape, expected.shape)) {
      throw new ModelFormatError(
        file,
        `tensor "${expected.name}" has shape [${info.shape.join(', ')}] but config.json implies [${expected.shape.join(', ')}]`,
      );
    }
    if (!isReadableDtype(info.dtype)) {
      throw new ModelFormatError(
        file,
        `tensor "${expected.name}" has dtype ${info.dtype}; Loom reads only F32, F16 and BF16`,
      );
    }
  }
}

/** Placeholder that backLinearWeightsByFiles replaces with a getter before anyone sees it. */
const FILE_BACKED = new Float32Array(0);

/**
 * Reads and checks every tensor the config implies, file by file in offset order (so reads are
 * sequential and each file reports its progress once). F32 linear weights are not kept: they stay
 * in the file (`files`) for whoever maps it, and are checked by linear-weight-check.ts, each
 * file's after its other tensors, or all of them later (`deferred`).
 */
async function readCheckedTensors(
  checkpoint: Checkpoint,
  config: LlamaConfig,
  onFileRead: LoadModelOptions['onFileRead'],
  /** Given: F32 linear weights are only listed here, for a later check, not scanned now. */
  deferred?: FiniteScanJob[],
): Promise<{ tensors: Map<string, Float32Array>; files: Map<string, TensorFileRef> }> {
  const byFile = new Map<string, TensorFileRef[]>();
  const names = new Map<TensorFileRef, string>();
  for (const { name } of expectedModelTensors(config)) {
    const ref = checkpoint.fileRef(name);
    names.set(ref, name);
    const list = byFile.get(ref.file) ?? [];
    list.push(ref);
    byFile.set(ref.file, list);
  }
  const tensors = new Map<string, Float32Array>();
  const files = new Map<string, TensorFileRef>();
  for (const [file, refs] of byFile) {
    const started = performance.now();
    const linear: FiniteScanJob[] = [];
    for (const ref of refs.sort((a, b) => a.offset - b.offset)) {
      const name = names.get(ref)!;
      if (ref.dtype === 'F32' && isLinearWeight(name)) {
        linear.push({ file: ref.file, name, offset: ref.offset, length: ref.length });
        files.set(name, ref);
      } else {
        const data = await checkpoint.read(name);
        checkFiniteWeights(file, name, data);
        tensors.set(name, data);
      }
    }
    if (deferred) deferred.push(...linear);
    else checkLinearWeightsNow(linear);
    const fileBackedBytes = linear.reduce((sum, job) => sum + job.length, 0);
    onFileRead?.({
      file,
      tensors: refs.length,
      bytes: refs.reduce((sum, r) => sum + r.length, 0),
      seconds: (performance.now() - started) / 1000,
      fileBackedBytes,
      fileBackedChecked: deferred ? 'background' : 'now',
    });
  }
  return { tensors, files };
}

function isLinearWeight(name: string): boolean {
  return name === LM_HEAD_NAME || name.endsWith('_proj.weight');
}

/**
 * Loads a Hugging Face Llama-family model directory: config, tokenizer and f32 weights (F32
 * linear weights backed by their files, read on first access: see ModelWeights.files).
 * Every problem is a ModelFormatError naming the file at fault. Tensors the config doesn't
 * imply (rotary inv_freq buffers and the like) are ignored.
 */
export async function loadModel(dir: string, opts: LoadModelOptions = {}): Promise<LoadedModel> {
  const info = await stat(dir).catch(() => null);
  if (!info) throw new ModelFormatError(dir, 'model directory does not exist');
  if (!info.isDirectory()) throw new ModelFormatError(dir, 'is not a directory (expected a model directory)');

  const configDir = opts.configDir ?? dir;
  const config = await loadLlamaConfig(dir, opts.hfOverrides, configDir);
  const tokenizerDir = opts.tokenizerDir ?? dir;
  const tokenizer = await TextTokenizer.fromDir(tokenizerDir, opts.chatTemplateFile);
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new ModelFormatError(
      join(tokenizerDir, 'tokenizer.json'),
      `has ${tokenizer.vocabSize} ids but config.json's vocab_size is ${config.vocabSize}`,
    );
  }

  const checkpoint = await Checkpoint.open(dir);
  try {
    checkLayerCount(checkpoint, config, join(configDir, 'config.json'));
    checkTensors(checkpoint, config);
    const deferred = opts.linearWeightCheck === 'background' ? [] : undefined;
    const { tensors, files } = await readCheckedTensors(checkpoint, config, opts.onFileRead, deferred);
    const weights = assembleWeights(config, (name) => tensors.get(name) ?? FILE_BACKED);
    if (config.tieWordEmbeddings && files.size > 0 && checkpoint.fileRef(EMBED_NAME).dtype === 'F32') {
      files.set(LM_HEAD_NAME, checkpoint.fileRef(EMBED_NAME));
    }
    weights.files = files;
    weights.checkpointDtype = checkpoint.fileRef(moduleWeightName(0, 'q_proj')).dtype;
    backLinearWeightsByFiles(weights, files);
    const linearWeightsChecked = deferred ? checkLinearWeightsInBackground(deferred) : Promise.resolve();
    // Handled here so a caller that fails before awaiting it leaves no unhandled rejection.
    linearWeightsChecked.catch(() => {});
    return {
      name: basename(resolve(dir)),
      dir,
      configFile: join(configDir, 'config.json'),
      config,
      weights,
      tokenizer,
      linearWeightsChecked,
    };
  } finally {
    await checkpoint.close();
  }
}
