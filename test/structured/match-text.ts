import { ByteMatcher } from '../../structured/byte-matcher.js';
import type { Grammar } from '../../structured/grammar-nodes.js';

/** Bytes of `text` the matcher takes before it refuses one, and whether it may end after all of them. */
export function run(grammar: Grammar, text: string | Uint8Array): { taken: number; canEnd: boolean } {
  const m = new ByteMatcher(grammar);
  let states = m.start();
  const bytes = typeof text === 'string' ? new TextEncoder().encode(text) : text;
  for (let i = 0; i < bytes.length; i++) {
    states = m.feed(states, bytes[i]);
    if (states.length === 0) return { taken: i, canEnd: false };
  }
  return { taken: bytes.length, canEnd: m.canEnd(states) };
}

/** Whether the grammar takes all of `text` and lets the output end there. */
export const accepts = (g: Grammar, text: string) => {
  const r = run(g, text);
  return r.taken === new TextEncoder().encode(text).length && r.canEnd;
};
