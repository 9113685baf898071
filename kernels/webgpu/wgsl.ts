import { readFileSync } from 'node:fs';

const sources = new Map<string, string>();

/**
 * The text of `kernels/webgpu/<file>` with every `{{NAME}}` replaced from `values`. Only dtype,
 * vector width and head size are ever substituted; shapes go in immediates.
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
