import * as ort from 'onnxruntime-node';
import type { AdapterLayout } from '../../memory/adapter-layout.js';
import type { LlamaConfig } from '../../model/llama-config.js';
import { moduleShape, type TargetModule } from '../../model/llama-modules.js';
import { slotRowWidth } from './llama-graph.js';

/** One adapter's blocks of one module, per layer, as the step graph's slot inputs take them. */
export interface SlotBlocks {
  a: ort.Tensor[];
  b: ort.Tensor[];
}

/**
 * Zero-copy views of adapters' LoRA blocks in the page storage, for the step graph's adapter
 * slots (LORA_SLOTS). An adapter's pages are laid out row after row (memory/adapter-layout.ts), so
 * where they are consecutive a module's A rows of one layer are one [rank, pagesPerRowA·pageSize]
 * block of the storage (rank: the module's in that layer, which rank_pattern can vary), and its Bᵀ rows another: a subarray, which onnxruntime-node reads in
 * place. Views are made once per adapter layout and stay valid while it is resident (they see
 * whatever the pages hold, not a copy).
 */
export class LoraSlotViews {
  private readonly views = new WeakMap<AdapterLayout, Partial<Record<TargetModule, SlotBlocks | null>>>();
  private readonly empties = new Map<number, ort.Tensor>();

  constructor(
    private readonly storage: Float32Array,
    private readonly config: LlamaConfig,
  ) {}

  /**
   * The adapter's A and Bᵀ blocks of module m in every layer, or null when it skips m in some
   * layer or some block's pages are not consecutive (then its rows are gathered instead).
   */
  blocks(adapter: AdapterLayout, m: TargetModule): SlotBlocks | null {
    let perModule = this.views.get(adapter);
    if (!perModule) {
      perModule = {};
      this.views.set(adapter, perModule);
    }
    let blocks = perModule[m];
    if (blocks === undefined) {
      blocks = this.viewBlocks(adapter, m);
      perModule[m] = blocks;
    }
    return blocks;
  }

  /** A rank-0 A block of module m: what an unused slot is fed. */
  emptyA(m: TargetModule): ort.Tensor {
    return this.empty(slotRowWidth(moduleShape(this.config, m).inFeatures, this.config.hiddenSize));
  }

  /** A rank-0 Bᵀ block of module m. */
  emptyB(m: TargetModule): ort.Tensor {
    return this.empty(slotRowWidth(moduleShape(this.config, m).outFeatures, this.config.hiddenSize));
  }

  private empty(width: number): ort.Tensor {
    let t = this.empties.get(width);
    if (!t) {
      t = new ort.Tensor('float32', new Float32Array(0), [0, width]);
      this.empties.set(width, t);
    }
    return t;
  }

  private viewBlocks(adapter: AdapterLayout, m: TargetModule): SlotBlocks | null {
    const ps = this.config.hiddenSize;
    const { inFeatures, outFeatures } = moduleShape(this.config, m);
    const view = (pages: Int32Array, rank: number, width: number): ort.Tensor | null => {
      for (let i = 1; i < pages.length; i++) if (pages[i] !== pages[0] + i) return null;
      const start = pages[0] * ps;
      const data = this.storage.subarray(start, start + pages.length * ps);
      return new ort.Tensor('float32', data, [rank, width]);
    };
    const blocks: SlotBlocks = { a: [], b: [] };
    for (let l = 0; l < this.config.numLayers; l++) {
      const placed = adapter.modules[l]?.[m];
      if (!placed) return null;
      const a = view(placed.aPages, placed.rank, slotRowWidth(inFeatures, ps));
      const b = view(placed.bPages, placed.rank, slotRowWidth(outFeatures, ps));
      if (!a || !b) return null;
      blocks.a.push(a);
      blocks.b.push(b);
    }
    return blocks;
  }
}
