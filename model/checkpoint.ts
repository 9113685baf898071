import { basename, join } from 'node:path';
import { readJsonObject } from './config-file.js';
import { fileExists } from './file-exists.js';
import { ModelFormatError } from './model-format-error.js';
import { SafetensorsFile, type TensorFileRef, type TensorInfo } from './safetensors.js';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

/**
 * A model's weights on disk: one `model.safetensors`, or shards listed by
 * `model.safetensors.index.json`. Headers are validated on open; data is read per tensor.
 */
export class Checkpoint {
  /** The file that lists the tensors (the single file or the index): blamed for a missing tensor. */
  readonly source: string;
  private readonly files: SafetensorsFile[];
  private readonly owner: Map<string, SafetensorsFile>;

  private constructor(source: string, files: SafetensorsFile[], owner: Map<string, SafetensorsFile>) {
    this.source = source;
    this.files = files;
    this.owner = owner;
  }

  static async open(dir: string): Promise<Checkpoint> {
    const indexPath = join(dir, INDEX_FILE);
    if (await fileExists(indexPath)) return Checkpoint.openSharded(dir, indexPath);
    const single = join(dir, SINGLE_FILE);
    if (!(await fileExists(single))) {
      throw new ModelFormatError(dir, `no weights: neither ${SINGLE_FILE} nor ${INDEX_FILE} is there`);
    }
    const file = await SafetensorsFile.open(single);
    return new Checkpoint(single, [file], new Map([...file.tensors.keys()].map((name) => [name, file])));
  }

  private static async openSharded(dir: string, indexPath: string): Promise<Checkpoint> {
    const weightMap = await readWeightMap(indexPath);
    const shardNames = [...new Set(weightMap.values())];
    const files: SafetensorsFile[] = [];
    try {
      const byShard = new Map<string, SafetensorsFile>();
      for (const shard of shardNames) {
        const path = join(dir, shard);
        if (!(await fileExists(path))) {
          const example = [...weightMap].find(([, s]) => s === shard)![0];
          throw new ModelFormatError(indexPath, `shard "${shard}" (holding "${example}") does not exist`);
        }
        const file = await SafetensorsFile.open(path);
        files.push(file);
        byShard.set(shard, file);
      }
      const owner = new Map<string, SafetensorsFile>();
      for (const [tensor, shard] of weightMap) {
        const file = byShard.get(shard)!;
        if (!file.tensors.has(tensor)) {
          throw new ModelFormatError(
            file.file,
            `tensor "${tensor}" is listed for this shard in ${INDEX_FILE} but the shard lacks it`,
          );
        }
        owner.set(tensor, file);
      }
      return new Checkpoint(indexPath, files, owner);
    } catch (err) {
      await Promise.all(files.map((f) => f.close()));
      throw err;
    }
  }

  has(name: string): boolean {
    return this.owner.has(name);
  }

  names(): string[] {
    return [...this.owner.keys()];
  }

  /** Header entry of a tensor and the file that holds it, or undefined if no file holds it. */
  find(name: string): { file: string; info: TensorInfo } | undefined {
    const file = this.owner.get(name);
    return file && { file: file.file, info: file.info(name) };
  }

  async read(name: string): Promise<Float32Array> {
    return this.fileOf(name).read(name);
  }

  /** Where the tensor's bytes are on disk. */
  fileRef(name: string): TensorFileRef {
    return this.fileOf(name).fileRef(name);
  }

  private fileOf(name: string): SafetensorsFile {
    const file = this.owner.get(name);
    if (!file) throw new ModelFormatError(this.source, `tensor "${name}" is missing`);
    return file;
  }

  async close(): Promise<void> {
    await Promise.all(this.files.map((f) => f.close()));
  }
}

async function readWeightMap(indexPath: string): Promise<Map<string, string>> {
  const raw = (await readJsonObject(indexPath, { optional: false }))!;
  const weightMap = raw.weight_map;
  if (!weightMap || typeof weightMap !== 'object' || Array.isArray(weightMap)) {
    throw new ModelFormatError(indexPath, '"weight_map" is missing or not an object');
  }
  const out = new Map<string, string>();
  for (const [tensor, shard] of Object.entries(weightMap)) {
    // Shards are plain file names next to the index; anything else could point outside the model.
    if (typeof shard !== 'string' || shard !== basename(shard) || shard === '..' || shard === '.') {
      throw new ModelFormatError(
        indexPath,
        `tensor "${tensor}" maps to ${JSON.stringify(shard)}, not a file name`,
      );
    }
    out.set(tensor, shard);
  }
  if (out.size === 0) throw new ModelFormatError(indexPath, '"weight_map" lists no tensors');
  return out;
}
