import type { ObjectProperty } from './grammar-nodes.js';

/**
 * Which of an object's listed keys may come next (byte-matcher.ts): in their listed order, where
 * each key skips the optional ones before it and none passes a required one (vLLM's backends
 * write keys so), or in any order (a structural tag's `any_order`), each key once.
 */

export interface ObjectSpec {
  readonly properties: readonly ObjectProperty[];
  readonly additional: number | null;
  readonly minProperties: number;
  readonly maxProperties: number;
  /** requiredFrom[i]: how many of properties[i..] are required. */
  readonly requiredFrom: readonly number[];
  /** The listed keys may come in any order (a structural tag's `any_order`), each once. */
  readonly anyOrder: boolean;
}

/**
 * Where an object is in its listed properties: those that may come next, and, once key `j` (or
 * an additional key, -1) is written, how many listed ones could still come and how many of them
 * are required.
 */
export interface ListedKeys {
  readonly candidates: readonly number[];
  left(j: number): { listed: number; required: number };
  /** Every required key is written. */
  readonly complete: boolean;
  /** The frame's fields once key `j` is written. */
  written(j: number): { next: number; written: string };
}

/** What an object frame keeps of the listed keys written so far. */
export interface KeysWritten {
  /** Index of the first listed property that may still be written (listed order). */
  readonly next: number;
  /** With any_order: '1' at each listed property written ('' before any). */
  readonly written: string;
}

/** The listed keys of an object of `spec` that has written `f`'s. */
export function listedKeys(f: KeysWritten, spec: ObjectSpec): ListedKeys {
  return spec.anyOrder ? inAnyOrder(f, spec) : inListedOrder(f, spec);
}

/** Listed properties in their order: from `next` up to the first required one may come. */
function inListedOrder(f: KeysWritten, spec: ObjectSpec): ListedKeys {
  const props = spec.properties;
  let last = f.next;
  while (last < props.length && !props[last].required) last++;
  const candidates: number[] = [];
  for (let j = f.next; j < props.length && j <= last; j++) candidates.push(j);
  return {
    candidates,
    left: (j) => {
      const from = j >= 0 ? j + 1 : f.next;
      return { listed: props.length - from, required: spec.requiredFrom[from] };
    },
    complete: last >= props.length,
    written: (j) => ({ next: j >= 0 ? j + 1 : f.next, written: '' }),
  };
}

/** Listed properties in any order (any_order): each not written yet may come. */
function inAnyOrder(f: KeysWritten, spec: ObjectSpec): ListedKeys {
  const props = spec.properties;
  const candidates: number[] = [];
  let required = 0;
  props.forEach((p, j) => {
    if (f.written[j] === '1') return;
    candidates.push(j);
    if (p.required) required++;
  });
  return {
    candidates,
    left: (j) =>
      j >= 0
        ? { listed: candidates.length - 1, required: required - (props[j].required ? 1 : 0) }
        : { listed: candidates.length, required },
    complete: required === 0,
    written: (j) => {
      if (j < 0) return { next: f.next, written: f.written };
      const bits = f.written.padEnd(props.length, '0');
      return { next: f.next, written: `${bits.slice(0, j)}1${bits.slice(j + 1)}` };
    },
  };
}
