import { expect } from 'vitest';

/** One tool call as OpenAI's API returns it. */
export interface Call {
  id: string;
  type: string;
  function: { name: string; arguments: string };
}

/** A streamed choice's tool_calls deltas put together, as OpenAI's clients do. */
export function assemble(
  deltas: Array<{
    index: number;
    id?: string;
    type?: string;
    function: { name?: string; arguments: string };
  }>,
): Call[] {
  const calls: Call[] = [];
  for (const d of deltas) {
    if (d.id !== undefined) {
      expect(d.index).toBe(calls.length);
      calls.push({
        id: d.id,
        type: d.type!,
        function: { name: d.function.name!, arguments: d.function.arguments },
      });
    } else calls[d.index].function.arguments += d.function.arguments;
  }
  return calls;
}

/** `text` cut into pieces of 1 to `most` characters, at places a seeded generator picks. */
export function pieces(text: string, next: () => number, most: number): string[] {
  const out: string[] = [];
  for (let at = 0; at < text.length; ) {
    const step = 1 + Math.floor(next() * most);
    out.push(text.slice(at, at + step));
    at += step;
  }
  return out;
}
