import { describe, expect, it } from 'vitest';
import { chatOutputReader } from '../../server/chat-output.js';
import { choiceFeeder, OutputBlocks } from '../../server/output-blocks.js';

/** A streamed choice's output blocks (the Responses and Messages APIs' items), fed piece by piece. */
function blocksOf(pieces: readonly string[]) {
  const feed = choiceFeeder(
    chatOutputReader({ kind: 'auto', parser: 'hermes', maxCalls: Number.POSITIVE_INFINITY }, null, true),
    null,
  );
  const blocks = new OutputBlocks();
  pieces.forEach((text, i) => {
    feed(blocks, { text, tokenIds: [], scores: [], end: i === pieces.length - 1 });
  });
  blocks.finish();
  return blocks.blocks.map((b) =>
    b.kind === 'call' ? { call: b.name, arguments: b.arguments } : { text: 'text' in b ? b.text : '' },
  );
}

describe('output blocks of a streamed choice with calls in its text', () => {
  it("keeps a call's last arguments with it when text follows in the same piece", () => {
    const expected = [{ text: 'On it.' }, { call: 'f', arguments: '{"a": 1}' }, { text: ' Done.' }];
    expect(blocksOf(['On it.<tool_call>{"name": "f", "arguments": {"a": ', '1}}</tool_call> Done.'])).toEqual(
      expected,
    );
    // The same when the last piece ends the output (the reader's end settles what it held back).
    expect(
      blocksOf(['On it.<tool_call>{"name": "f", "arguments": {"a": ', '1}}</tool_call> Do', 'ne.']),
    ).toEqual(expected);
  });
});
