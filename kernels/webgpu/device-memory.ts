import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** A GPU's memory size as the operating system reports it (WebGPU itself has no such query). */
export interface DeviceMemory {
  bytes: number;
  /** Where the figure came from, for the start-up log line. */
  source: string;
}

/** How the sizes are read; tests swap these for canned answers. */
export interface DeviceMemoryProbes {
  /** `nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits` output, or null without it. */
  nvidiaSmi(): string | null;
  /** Each amdgpu card's `mem_info_vram_total` in bytes. */
  amdVramTotals(): number[];
}

const DRM = '/sys/class/drm';

export const systemProbes: DeviceMemoryProbes = {
  nvidiaSmi() {
    try {
      return execFileSync('nvidia-smi', ['--query-gpu=memory.total', '--format=csv,noheader,nounits'], {
        encoding: 'utf8',
        timeout: 5000,
        stdio: ['ignore', 'pipe', 'ignore'],
      });
    } catch {
      return null;
    }
  },
  amdVramTotals() {
    try {
      return readdirSync(DRM)
        .filter((card) => /^card\d+$/.test(card))
        .flatMap((card) => {
          try {
            return [Number(readFileSync(join(DRM, card, 'device', 'mem_info_vram_total'), 'utf8').trim())];
          } catch {
            return [];
          }
        })
        .filter((bytes) => Number.isFinite(bytes) && bytes > 0);
    } catch {
      return [];
    }
  },
};

/**
 * The memory of the machine's GPU, from NVIDIA's driver tool or amdgpu's sysfs, or null where
 * neither answers. With several GPUs the smallest counts: which one Dawn picks is not known
 * before a device is made, and a fraction of the smallest fits any of them.
 */
export function readDeviceMemory(probes: DeviceMemoryProbes = systemProbes): DeviceMemory | null {
  const smi = probes.nvidiaSmi();
  if (smi !== null) {
    const mib = smi
      .split('\n')
      .map((line) => Number(line.trim()))
      .filter((value) => Number.isFinite(value) && value > 0);
    if (mib.length > 0) return { bytes: Math.min(...mib) * 2 ** 20, source: 'nvidia-smi' };
  }
  const amd = probes.amdVramTotals();
  if (amd.length > 0) return { bytes: Math.min(...amd), source: 'amdgpu mem_info_vram_total' };
  return null;
}
