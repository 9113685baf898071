/**
 * Compute pipelines cached by an explicit key of compile-time options (kernel name, entry point,
 * dtype, split-binding shape), never by tensor shape: shapes travel as immediates, so one
 * pipeline serves every batch. A pipeline costs milliseconds to build; a bind group ~15 µs, so
 * bind groups are cached too, keyed by the exact buffers (and ranges) they bind.
 */
export class PipelineCache {
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly objectIds = new WeakMap<object, number>();
  private nextObjectId = 1;

  constructor(private readonly device: GPUDevice) {}

  get numPipelines(): number {
    return this.pipelines.size;
  }

  /** The pipeline for `key`, compiling `code()` (labelled `label`) the first time. */
  pipeline(key: string, label: string, code: () => string, entryPoint = 'main'): GPUComputePipeline {
    const fullKey = `${key}#${entryPoint}`;
    const cached = this.pipelines.get(fullKey);
    if (cached) return cached;
    const module = this.device.createShaderModule({ label, code: code() });
    const pipeline = this.device.createComputePipeline({
      label: `${label}:${entryPoint}`,
      layout: 'auto',
      compute: { module, entryPoint },
    });
    this.pipelines.set(fullKey, pipeline);
    return pipeline;
  }

  /**
   * A bind group of group 0 binding `buffers[i]` at binding i (null: a binding this entry point
   * does not use); reused while the buffers live.
   */
  bindGroup(pipeline: GPUComputePipeline, buffers: ReadonlyArray<GPUBufferBinding | null>): GPUBindGroup {
    const parts = [String(this.idOf(pipeline))];
    for (const b of buffers) parts.push(b ? `${this.idOf(b.buffer)}:${b.offset ?? 0}:${b.size ?? -1}` : '-');
    const key = parts.join('|');
    const cached = this.bindGroups.get(key);
    if (cached) return cached;
    const entries: GPUBindGroupEntry[] = [];
    buffers.forEach((resource, binding) => {
      if (resource) entries.push({ binding, resource });
    });
    const group = this.device.createBindGroup({
      label: pipeline.label,
      layout: pipeline.getBindGroupLayout(0),
      entries,
    });
    this.bindGroups.set(key, group);
    return group;
  }

  /** Forgets bind groups naming `buffer`; call before destroying a buffer that may be recreated. */
  forgetBuffer(buffer: GPUBuffer): void {
    const id = this.objectIds.get(buffer);
    if (id === undefined) return;
    const needle = `|${id}:`;
    for (const key of this.bindGroups.keys()) if (key.includes(needle)) this.bindGroups.delete(key);
  }

  clear(): void {
    this.pipelines.clear();
    this.bindGroups.clear();
  }

  private idOf(object: object): number {
    let id = this.objectIds.get(object);
    if (id === undefined) {
      id = this.nextObjectId++;
      this.objectIds.set(object, id);
    }
    return id;
  }
}
