import type { AdapterLayout } from '../memory/adapter-layout.js';
import type { KvLayout } from '../memory/kv-layout.js';
import type { PagePool } from '../memory/page-pool.js';
import type { LlamaConfig } from '../model/llama-config.js';
import { moduleShape, TARGET_MODULES, type TargetModule } from '../model/llama-modules.js';
import type { LoraAdapter, LoraPair } from '../model/lora-adapter.js';
import type { ModelWeights } from '../model/model-weights.js';
import { type StoredLoraAdapter, widenAdapter } from '../model/stored-adapter.js';
import {
  type Engine,
  type EngineFailure,
  type SequenceStep,
  type StepPlan,
  sequenceLogitRows,
} from './engine.js';

/**
 * The baseline of a server without multi-adapter batching (--lora-mode merged): one adapter at a
 * time is merged into the base weights (W + s·B·A, as PEFT's merge_and_unload), and the weights are
 * swapped when a sequence needs another. A step whose sequences use several adapters runs as one
 * inner step per adapter, in turn, each after its swap. The inner engine must read the weight
 * arrays it was built from at every step (onnx with `weights: 'inputs'`, or reference).
 */
export class MergedLoraEngine implements Engine {
  readonly kind: Engine['kind'];
  readonly config: LlamaConfig;
  readonly pool: PagePool;
  readonly kvLayout: KvLayout;
  /** Base weights of modules an adapter was merged into, as loaded: restored before each swap. */
  private readonly pristine = new Map<string, Float32Array>();
  private readonly adapters = new WeakMap<AdapterLayout, LoraAdapter>();
  private merged: LoraAdapter | null = null;
  /** Weight swaps made, and the seconds they took: the cost this baseline pays. */
  numSwaps = 0;
  swapSeconds = 0;

  constructor(
    private readonly inner: Engine,
    private readonly weights: ModelWeights,
  ) {
    this.kind = inner.kind;
    this.config = inner.config;
    this.pool = inner.pool;
    this.kvLayout = inner.kvLayout;
  }

  get runLimits() {
    return this.inner.runLimits;
  }

  async step(plan: StepPlan): Promise<Float32Array> {
    const groups = new Map<AdapterLayout | null, number[]>();
    plan.sequences.forEach((s, i) => {
      const group = groups.get(s.adapter) ?? [];
      group.push(i);
      groups.set(s.adapter, group);
    });
    const vocab = this.config.vocabSize;
    const rowsOf: Float32Array[] = new Array(plan.sequences.length);
    for (const [layout, indices] of groups) {
      this.mergeFor(layout);
      const sequences: SequenceStep[] = indices.map((i) => ({ ...plan.sequences[i], adapter: null }));
      const logits = await this.inner.step({ sequences });
      let row = 0;
      indices.forEach((i) => {
        const n = sequenceLogitRows(plan.sequences[i]);
        rowsOf[i] = logits.subarray(row * vocab, (row + n) * vocab);
        row += n;
      });
    }
    const out = new Float32Array(rowsOf.reduce((n, rows) => n + rows.length, 0));
    let at = 0;
    for (const rows of rowsOf) {
      out.set(rows, at);
      at += rows.length;
    }
    return out;
  }

  fatalFailure(): EngineFailure | null {
    return this.inner.fatalFailure?.() ?? null;
  }

  /** Keeps an f32 copy for merging (resident adapters only: evicted layouts are dropped with them). */
  writeAdapter(layout: AdapterLayout, adapter: StoredLoraAdapter): void {
    this.inner.writeAdapter(layout, adapter);
    this.adapters.set(layout, widenAdapter(adapter));
  }

  releaseAdapter(layout: AdapterLayout): void {
    this.inner.releaseAdapter?.(layout);
    this.adapters.delete(layout);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  /** Makes the base weights hold `layout`'s adapter merged (or none), restoring the last one's modules first. */
  private mergeFor(layout: AdapterLayout | null): void {
    const adapter = layout === null ? null : this.adapters.get(layout);
    if (adapter === undefined) throw new Error(`adapter ${layout?.name} was never written to this engine`);
    if (adapter === this.merged) return;
    const started = performance.now();
    if (this.merged) this.forEachPair(this.merged, (w, key) => w.set(this.pristine.get(key)!));
    if (adapter) {
      this.forEachPair(adapter, (w, key, pair, m) => {
        if (!this.pristine.has(key)) this.pristine.set(key, w.slice());
        const { inFeatures, outFeatures } = moduleShape(this.config, m);
        const r = pair.rank;
        for (let o = 0; o < outFeatures; o++) {
          const row = o * inFeatures;
          for (let k = 0; k < r; k++) {
            const b = pair.scale * pair.b[o * r + k];
            if (b === 0) continue;
            const a = k * inFeatures;
            for (let i = 0; i < inFeatures; i++) w[row + i] += b * pair.a[a + i];
          }
        }
      });
    }
    this.merged = adapter;
    this.numSwaps++;
    this.swapSeconds += (performance.now() - started) / 1000;
  }

  private forEachPair(
    adapter: LoraAdapter,
    visit: (w: Float32Array, key: string, pair: LoraPair, m: TargetModule) => void,
  ): void {
    adapter.layers.forEach((layer, l) => {
      for (const m of TARGET_MODULES) {
        const pair = layer[m];
        if (pair) visit(this.weights.layers[l].linear[m], `${l}.${m}`, pair, m);
      }
    });
  }
}
