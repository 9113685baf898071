import { create, globals } from 'webgpu';
import { EngineFailure } from '../engine.js';
import { PipelineCache } from './pipeline-cache.js';

/** No WebGPU adapter exists here (no GPU, no usable Vulkan driver such as Mesa ≥ 23 lavapipe). */
export class NoWebGpuAdapterError extends Error {
  constructor(detail: string) {
    super(`no WebGPU adapter found: ${detail}`);
    this.name = 'NoWebGpuAdapterError';
  }
}

/** The device is gone (driver reset, out of memory, destroyed): every later call fails with this. */
export class WebGpuDeviceLostError extends EngineFailure {
  constructor(reason: string, message: string) {
    // The reason is WebGPU's enum ('destroyed', 'unknown'); the driver's message stays in the logs.
    super(`WebGPU device lost (${reason}): ${message}`, `WebGPU device lost (${reason})`, true);
    this.name = 'WebGpuDeviceLostError';
  }
}

/** A step needed device memory the device could not give; smaller steps still run. */
export class WebGpuOutOfMemoryError extends EngineFailure {
  constructor(detail: string) {
    super(
      `WebGPU out of memory: ${detail}`,
      'The inference engine ran out of device memory for this batch.',
      false,
    );
    this.name = 'WebGpuOutOfMemoryError';
  }
}

/** A validation or out-of-memory error Dawn reported for something this process recorded. */
export class WebGpuKernelError extends Error {
  constructor(messages: string[]) {
    super(`WebGPU reported ${messages.length} error(s): ${messages.join(' | ')}`);
    this.name = 'WebGpuKernelError';
  }
}

export interface WebGpuAdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter: boolean;
}

export interface WebGpuContextOptions {
  /** Use the software adapter even when a hardware one exists (tests comparing both). */
  forceFallbackAdapter?: boolean;
  /** Skip shader-f16 even where the adapter offers it. */
  disableF16?: boolean;
}

/** Limits Loom's kernels want raised from WebGPU's small defaults to the adapter's own. */
const WANTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupsPerDimension',
  'maxImmediateSize',
] as const;

let globalsInstalled = false;

/**
 * One GPU device with what every launcher needs: its limits, whether f16 storage works, the
 * pipeline cache, and errors turned into typed exceptions (Dawn reports them asynchronously;
 * `check()` raises what has been reported so far).
 */
export class WebGpuContext {
  readonly pipelines: PipelineCache;
  private readonly errors: string[] = [];
  private lost: WebGpuDeviceLostError | null = null;
  private destroyed = false;

  constructor(
    /** Held so the Dawn instance outlives the device: collecting it kills the device under us. */
    readonly gpu: GPU,
    readonly device: GPUDevice,
    readonly adapter: WebGpuAdapterSummary,
    readonly hasF16: boolean,
    readonly hasTimestamps: boolean,
  ) {
    this.pipelines = new PipelineCache(device);
    device.addEventListener('uncapturederror', (event) => {
      this.errors.push((event as GPUUncapturedErrorEvent).error.message);
    });
    device.lost.then((info) => {
      if (!this.destroyed) this.lost = new WebGpuDeviceLostError(info.reason, info.message);
    });
  }

  /** The loss that ended this device, or null while it lives (or after our own destroy()). */
  get lostError(): WebGpuDeviceLostError | null {
    return this.lost;
  }

  /**
   * After a call failed: the device-lost error if the device is gone. Dawn rejects pending maps
   * before it resolves `device.lost`, so this gives the lost promise a turn to arrive.
   */
  async lossBehind(): Promise<WebGpuDeviceLostError | null> {
    if (!this.lost && !this.destroyed)
      await Promise.race([this.device.lost, new Promise((resolve) => setTimeout(resolve, 50))]);
    await new Promise((resolve) => setImmediate(resolve));
    return this.lost;
  }

  get limits(): GPUSupportedLimits {
    return this.device.limits;
  }

  /** Largest byte size one storage binding may have. */
  get maxBindingBytes(): number {
    return this.device.limits.maxStorageBufferBindingSize;
  }

  /** Throws the first problem reported since the last check: a lost device or recorded errors. */
  check(): void {
    if (this.lost) throw this.lost;
    if (this.destroyed) throw new WebGpuDeviceLostError('destroyed', 'the context was destroyed');
    if (this.errors.length > 0) throw new WebGpuKernelError(this.errors.splice(0));
  }

  /** Waits for the queue, then raises anything Dawn reported meanwhile. */
  async finish(): Promise<void> {
    await this.device.queue.onSubmittedWorkDone();
    this.check();
  }

  /**
   * Runs `record` (which records commands and says which buffer bytes to read back), submits,
   * and returns those bytes. Out-of-memory and validation error scopes around it turn a failed
   * allocation into WebGpuOutOfMemoryError (after `onScopeError`, which drops what the failed
   * growth left behind) for this call only; a lost device, before or during the call, into
   * WebGpuDeviceLostError, for this and every later call.
   */
  async submitAndRead(
    record: () => { encoder: GPUCommandEncoder; source: GPUBuffer; bytes: number },
    onScopeError: () => void,
  ): Promise<ArrayBuffer> {
    this.check();
    const { device } = this;
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    let staging: GPUBuffer | null = null;
    let mapped: Promise<void> | null = null;
    let bytes = 0;
    let recordError: unknown = null;
    try {
      const out = record();
      bytes = out.bytes;
      staging = device.createBuffer({ label: 'readback', size: Math.max(4, bytes), usage: 0x09 });
      if (bytes > 0) out.encoder.copyBufferToBuffer(out.source, 0, staging, 0, bytes);
      device.queue.submit([out.encoder.finish()]);
      mapped = staging.mapAsync(1);
      // Keeps a rejection (device lost) from going unhandled while the scopes are awaited first.
      mapped.catch(() => {});
    } catch (error) {
      recordError = error;
    }
    const scopes = Promise.all([device.popErrorScope(), device.popErrorScope()]);
    const [validationError, oomError] = await scopes.catch(() => [null, null]);
    if (oomError || validationError) {
      staging?.destroy();
      onScopeError();
      throw (
        (await this.lossBehind()) ??
        (oomError
          ? new WebGpuOutOfMemoryError(oomError.message)
          : new WebGpuKernelError([validationError?.message ?? 'unknown']))
      );
    }
    if (!staging || !mapped) throw recordError;
    try {
      await mapped;
    } catch (error) {
      staging.destroy();
      throw (await this.lossBehind()) ?? error;
    }
    const result = staging.getMappedRange().slice(0, bytes);
    staging.unmap();
    staging.destroy();
    this.check();
    return result;
  }

  /** Releases the device so Node can exit; the context is unusable afterwards. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.pipelines.clear();
    this.device.destroy();
  }
}

/** Finds an adapter (hardware first) and opens a device with the adapter's limits. */
export async function createWebGpuContext(options: WebGpuContextOptions = {}): Promise<WebGpuContext> {
  if (!globalsInstalled) {
    Object.assign(globalThis, globals);
    globalsInstalled = true;
  }
  const gpu = create([]);
  let adapter: GPUAdapter | null = null;
  if (!options.forceFallbackAdapter)
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  adapter ??= await gpu.requestAdapter({ forceFallbackAdapter: true });
  adapter ??= await gpu.requestAdapter();
  if (!adapter)
    throw new NoWebGpuAdapterError(
      'requestAdapter() returned null; install a Vulkan driver (on Debian 12: mesa-vulkan-drivers from bookworm-backports)',
    );
  const requiredLimits: Record<string, number> = {};
  for (const name of WANTED_LIMITS) {
    const value = (adapter.limits as unknown as Record<string, number | undefined>)[name];
    if (typeof value === 'number') requiredLimits[name] = value;
  }
  const hasF16 = !options.disableF16 && adapter.features.has('shader-f16');
  const hasTimestamps = adapter.features.has('timestamp-query');
  const requiredFeatures: GPUFeatureName[] = [];
  if (hasF16) requiredFeatures.push('shader-f16');
  if (hasTimestamps) requiredFeatures.push('timestamp-query');
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures, label: 'loom' });
  const info = adapter.info;
  const summary: WebGpuAdapterSummary = {
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    isFallbackAdapter:
      (info as { isFallbackAdapter?: boolean }).isFallbackAdapter ??
      (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter ??
      info.architecture === 'software',
  };
  return new WebGpuContext(gpu, device, summary, hasF16, hasTimestamps);
}
