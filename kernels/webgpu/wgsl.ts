import { readFileSync } from 'node:fs';
import type { SplitBuffer } from './buffers.js';

const sources = new Map<string, string>();

/**
 * The text of `kernels/webgpu/<file>` with every `{{NAME}}` replaced from `values`. Only dtype,
 * vector width and split-binding shape are ever substituted; shapes go in immediates.
 */
export function loadWgsl(file: string, values: Record<string, string | number> = {}): string {
  let text = sources.get(file);
  if (text === undefined) {
    text = readFileSync(new URL(`./${file}`, import.meta.url), 'utf8');
    sources.set(file, text);
  }
  const out = text.replace(/\{\{(\w+)\}\}/g, (whole, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`${file}: no value for ${whole}`);
    return String(value);
  });
  return out;
}

/** The compile-time shape of a split binding: part of a pipeline's cache key. */
export function splitKey(split: SplitBuffer): string {
  return `${split.dtype}x${split.chunks.length}x${split.chunkElements}`;
}

/**
 * WGSL declarations of a split f32 tensor bound at `firstBinding…` as vec4 arrays, with
 * `<name>_load(i4)` (and `<name>_store(i4, v)` when writable) addressing it by vec4 index as if
 * it were one array. WGSL has no arrays of storage bindings, hence the switch.
 */
export function splitBindingWgsl(
  name: string,
  split: SplitBuffer,
  firstBinding: number,
  access: 'read' | 'read_write',
): string {
  if (split.dtype !== 'f32') throw new Error(`${name}: split bindings of ${split.dtype} are not supported`);
  const n = split.chunks.length;
  const chunk4 = split.chunkElements / 4;
  const lines: string[] = [];
  for (let i = 0; i < n; i++)
    lines.push(
      `@group(0) @binding(${firstBinding + i}) var<storage, ${access}> ${name}${i}: array<vec4<f32>>;`,
    );
  const cases = (body: (i: number) => string) => {
    if (n === 1) return `  ${body(0)}`;
    const out = [`  let c = i4 / ${chunk4}u;`, `  let j = i4 - c * ${chunk4}u;`, '  switch c {'];
    for (let i = 0; i < n - 1; i++) out.push(`    case ${i}u: { ${body(i)} }`);
    out.push(`    default: { ${body(n - 1)} }`, '  }');
    return out.join('\n');
  };
  const idx = n === 1 ? 'i4' : 'j';
  lines.push(
    `fn ${name}_load(i4: u32) -> vec4<f32> {`,
    cases((i) => `return ${name}${i}[${idx}];`),
    '}',
  );
  if (access === 'read_write')
    lines.push(
      `fn ${name}_store(i4: u32, v: vec4<f32>) {`,
      cases((i) => `${name}${i}[${idx}] = v;`),
      '}',
    );
  return lines.join('\n');
}
