import { describe, expect, it } from 'vitest';
import { specialAddedToken } from '../../model/synthetic-tokenizer.js';
import { TextTokenizer } from '../../model/tokenizer.js';
import { mulberry32 } from '../../scheduler/prng.js';
import { GuideError } from '../../structured/grammar-nodes.js';
import { tokenGuide, tokenVocabulary } from '../../structured/request-guide.js';
import { structuralTagGrammar } from '../../structured/structural-tag.js';
import type { GuideState } from '../../structured/token-guide.js';
import { llama3StyleTokenizer } from '../model/tokenizer-fixtures.js';

/**
 * Structural tags' token-level formats (xgrammar's token, exclude_token, any_tokens,
 * token_triggered_tags, token_dispatch, and tags that begin or end with a token), run through the
 * token guide over a Llama-3-style vocabulary with control tokens of its own.
 */
const fixture = llama3StyleTokenizer(['hello', 'hel', 'lo', ' world', '{"', '"}', 'city', '":"']);
const json = fixture.json as { added_tokens: unknown[]; model: { vocab: Record<string, number> } };
const firstSpecial = Object.keys(json.model.vocab).length; // BOS, then EOS
const BOS = firstSpecial;
const EOS = firstSpecial + 1;
const TOOL = firstSpecial + 2;
const END_TOOL = firstSpecial + 3;
const THINK = firstSpecial + 4;
json.added_tokens.push(
  specialAddedToken(TOOL, '<|tool|>'),
  specialAddedToken(END_TOOL, '<|/tool|>'),
  specialAddedToken(THINK, '<|think|>'),
);
const tokenizer = new TextTokenizer({ tokenizerJson: fixture.json });
const id = fixture.idOf;

const grammarOf = (format: unknown) =>
  structuralTagGrammar({ type: 'structural_tag', format }, 'response_format', () =>
    tokenVocabulary(tokenizer),
  );

/** Whether the guide allows each of `ids` in turn (EOS as the end), and where it first refuses. */
function walk(format: unknown, ids: number[]): { refusedAt: number; canEnd: boolean; state: GuideState } {
  const state = tokenGuide(tokenizer, grammarOf(format)).start();
  for (let i = 0; i < ids.length; i++) {
    if (!state.allowedTokens([EOS]).includes(ids[i])) return { refusedAt: i, canEnd: false, state };
    state.advance(ids[i]);
  }
  return { refusedAt: -1, canEnd: state.allowedTokens([EOS]).includes(EOS), state };
}
const accepts = (format: unknown, ids: number[]) => {
  const r = walk(format, ids);
  return r.refusedAt === -1 && r.canEnd;
};

describe('structural tags: token-level formats', () => {
  it('names tokens by id or by text, special tokens included, and refuses names the vocabulary lacks', () => {
    const vocabulary = tokenVocabulary(tokenizer);
    expect(vocabulary.idOf('<|tool|>')).toBe(TOOL);
    expect(vocabulary.idOf('hello')).toBe(id('hello'));
    expect(vocabulary.idOf(' world')).toBe(id(' world'));
    expect(vocabulary.idOf('h')).toBe(id('h'));
    expect(vocabulary.idOf('nothing')).toBeUndefined();
    expect(vocabulary.has(EOS)).toBe(true);
    expect(vocabulary.has(THINK + 1)).toBe(false);
    expect(() => grammarOf({ type: 'token', token: 'nothing' })).toThrow(
      /format\.token \("nothing"\) is not the text of any token/,
    );
    expect(() => grammarOf({ type: 'token', token: THINK + 1 })).toThrow(
      /is not a token id of the vocabulary/,
    );
    expect(() => grammarOf({ type: 'token', token: -1 })).toThrow(GuideError);
    expect(() => grammarOf({ type: 'any_tokens', exclude_tokens: [1.5] })).toThrow(/exclude_tokens\[0\]/);
    expect(() => grammarOf({ type: 'token', token: 1, extra: 2 })).toThrow(/format\.extra/);
    // Without a tokenizer (a tag Loom builds itself), a token given by text cannot be found.
    expect(() =>
      structuralTagGrammar({ type: 'structural_tag', format: { type: 'token', token: '<|tool|>' } }, 'tools'),
    ).toThrow(/needs a tokenizer/);
  });

  it('token: exactly that token, not its text spelled in other tokens', () => {
    const f = { type: 'token', token: 'hello' };
    expect(accepts(f, [id('hello')])).toBe(true);
    expect(walk(f, [id('hel'), id('lo')]).refusedAt).toBe(0);
    expect(walk(f, []).canEnd).toBe(false);
    expect(accepts({ type: 'token', token: '<|tool|>' }, [TOOL])).toBe(true);
    // Its mask is that token alone.
    const state = tokenGuide(tokenizer, grammarOf(f)).start();
    expect([...state.allowedTokens([EOS])]).toEqual([id('hello')]);
  });

  it('a tag with token begin and end, content in strings between them', () => {
    const f = {
      type: 'tag',
      begin: { type: 'token', token: '<|tool|>' },
      content: { type: 'const_string', value: 'hello world' },
      end: { type: 'token', token: END_TOOL },
    };
    expect(accepts(f, [TOOL, id('hello'), id(' world'), END_TOOL])).toBe(true);
    expect(accepts(f, [TOOL, id('hel'), id('lo'), id(' world'), END_TOOL])).toBe(true);
    expect(walk(f, [id('h')]).refusedAt).toBe(0);
    expect(walk(f, [TOOL, id('hello'), id(' world')]).canEnd).toBe(false);
    // The end token's text written out is not the end token.
    const text = [...new TextEncoder().encode('<|/tool|>')].map((b) => id(String.fromCharCode(b)));
    expect(walk(f, [TOOL, id('hello'), id(' world'), ...text]).refusedAt).toBe(3);
  });

  it('any_tokens stops at its tag end token (end detection), takes special tokens, never the end of the output', () => {
    const f = {
      type: 'tag',
      begin: { type: 'token', token: THINK },
      content: { type: 'any_tokens', exclude_tokens: ['<|tool|>'] },
      end: { type: 'token', token: END_TOOL },
    };
    expect(accepts(f, [THINK, id('hello'), BOS, id('{"'), END_TOOL])).toBe(true);
    expect(accepts(f, [THINK, END_TOOL])).toBe(true);
    expect(walk(f, [THINK, TOOL]).refusedAt).toBe(1);
    // After the end token, nothing more: any_tokens did not take it.
    expect(walk(f, [THINK, END_TOOL, END_TOOL]).refusedAt).toBe(2);
    const inside = walk(f, [THINK, id('hello')]).state;
    const allowed = new Set(inside.allowedTokens([EOS]));
    expect(allowed.has(EOS)).toBe(false);
    expect(allowed.has(TOOL)).toBe(false);
    expect(allowed.has(END_TOOL) && allowed.has(BOS) && allowed.has(id('hel'))).toBe(true);
    // Every token of the vocabulary but EOS and the excluded one.
    expect(allowed.size).toBe(tokenVocabulary(tokenizer).ids.length - 2);
  });

  it('any_tokens with max_tokens takes at most that many', () => {
    const f = {
      type: 'sequence',
      elements: [
        { type: 'any_tokens', max_tokens: 2 },
        { type: 'token', token: END_TOOL },
      ],
    };
    expect(accepts(f, [END_TOOL])).toBe(true);
    expect(accepts(f, [id('a'), id('b'), END_TOOL])).toBe(true);
    expect(walk(f, [id('a'), id('b'), id('c')]).refusedAt).toBe(2);
    expect(() => grammarOf({ type: 'any_tokens', max_tokens: -1 })).toThrow(/max_tokens/);
  });

  it('exclude_token: one token, not an excluded one nor the tag end', () => {
    const f = {
      type: 'tag',
      begin: 'x',
      content: { type: 'exclude_token', exclude_tokens: [id('a')] },
      end: { type: 'token', token: END_TOOL },
    };
    expect(accepts(f, [id('x'), id('b'), END_TOOL])).toBe(true);
    expect(accepts(f, [id('x'), TOOL, END_TOOL])).toBe(true);
    expect(walk(f, [id('x'), id('a')]).refusedAt).toBe(1);
    expect(walk(f, [id('x'), END_TOOL]).refusedAt).toBe(1);
  });

  it('token_triggered_tags: free tokens until a trigger token, then its tag', () => {
    const call = (name: string) => ({
      type: 'tag',
      begin: { type: 'token', token: TOOL },
      content: { type: 'const_string', value: name },
      end: { type: 'token', token: END_TOOL },
    });
    const f = {
      type: 'token_triggered_tags',
      trigger_tokens: ['<|tool|>'],
      tags: [call('hello'), call('city')],
    };
    expect(accepts(f, [])).toBe(true);
    expect(accepts(f, [id('hel'), id(' world'), THINK])).toBe(true);
    expect(
      accepts(f, [
        id(' world'),
        TOOL,
        id('city'),
        END_TOOL,
        id('hello'),
        TOOL,
        id('hel'),
        id('lo'),
        END_TOOL,
      ]),
    ).toBe(true);
    expect(walk(f, [TOOL, id(' world')]).refusedAt).toBe(1);
    expect(walk(f, [TOOL, id('city')]).canEnd).toBe(false);
    // The trigger's text written out is free text, not a trigger.
    const text = [...new TextEncoder().encode('<|tool|>')].map((b) => id(String.fromCharCode(b)));
    expect(accepts(f, [...text, id(' world')])).toBe(true);
    // stop_after_first: nothing after the first tag; at_least_one: a tag first.
    const once = { ...f, stop_after_first: true };
    expect(walk(once, [TOOL, id('city'), END_TOOL, id('a')]).refusedAt).toBe(3);
    const required = { ...f, at_least_one: true };
    expect(walk(required, [id('a')]).refusedAt).toBe(0);
    expect(accepts(required, [TOOL, id('hello'), END_TOOL, id('a')])).toBe(true);
    expect(() =>
      grammarOf({ ...f, tags: [{ ...call('x'), begin: { type: 'token', token: THINK } }] }),
    ).toThrow(/tags\[0\]\.begin \(token \d+\) is none of the trigger_tokens/);
    expect(() => grammarOf({ ...f, tags: [{ ...call('x'), begin: '<|tool|>' }] })).toThrow(/must be a token/);
  });

  it('token_triggered_tags inside a tag stops at its end token, and keeps exclude_tokens out', () => {
    const f = {
      type: 'tag',
      begin: { type: 'token', token: THINK },
      content: {
        type: 'token_triggered_tags',
        trigger_tokens: [TOOL],
        exclude_tokens: [BOS],
        tags: [
          {
            type: 'tag',
            begin: { type: 'token', token: TOOL },
            content: { type: 'const_string', value: 'a' },
            end: 'b',
          },
        ],
      },
      end: { type: 'token', token: END_TOOL },
    };
    expect(accepts(f, [THINK, id('x'), TOOL, id('a'), id('b'), id('y'), END_TOOL])).toBe(true);
    expect(walk(f, [THINK, BOS]).refusedAt).toBe(1);
    expect(walk(f, [THINK, END_TOOL, id('x')]).refusedAt).toBe(2);
  });

  it('token_dispatch: a rule token leads into its format, once or in a loop', () => {
    const f = {
      type: 'token_dispatch',
      rules: [
        [
          TOOL,
          { type: 'json_schema', json_schema: { type: 'object', properties: { city: { type: 'string' } } } },
        ],
        ['<|think|>', { type: 'const_string', value: 'hello' }],
      ],
    };
    expect(
      accepts(f, [id(' world'), TOOL, id('{"'), id('city'), id('":"'), id('x'), id('"}'), id('a')]),
    ).toBe(true);
    expect(accepts(f, [THINK, id('hello'), THINK, id('hel'), id('lo')])).toBe(true);
    expect(walk(f, [THINK, id('x')]).refusedAt).toBe(1);
    expect(walk({ ...f, loop: false }, [THINK, id('hello'), id('a')]).refusedAt).toBe(2);
    expect(() =>
      grammarOf({
        ...f,
        rules: [
          [TOOL, { type: 'any_text' }],
          [TOOL, { type: 'any_text' }],
        ],
      }),
    ).toThrow(/repeats the token/);
  });

  it('random format trees either compile or are refused with a GuideError, and their walks never throw', () => {
    const random = mulberry32(3);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)];
    const tokenRef = () => pick<unknown>([TOOL, END_TOOL, THINK, '<|tool|>', 'hello', -1, 'nope', 3.5, BOS]);
    const tokenFormat = () => ({ type: 'token', token: tokenRef() });
    const format = (depth: number): unknown => {
      const leaves = [
        () => ({ type: 'const_string', value: pick(['a', 'hello', '']) }),
        () => tokenFormat(),
        () => ({ type: 'exclude_token', exclude_tokens: [tokenRef()] }),
        () => ({ type: 'any_tokens', exclude_tokens: [tokenRef()], max_tokens: pick([undefined, 0, 2]) }),
        () => ({ type: 'any_text', excludes: ['x'] }),
      ];
      if (depth > 2) return pick(leaves)();
      const tag = () => ({
        type: 'tag',
        begin: random() < 0.5 ? tokenFormat() : 'b',
        content: format(depth + 1),
        end: random() < 0.5 ? tokenFormat() : pick(['e', ['e', 'f']]),
      });
      return pick([
        ...leaves,
        tag,
        () => ({ type: 'sequence', elements: [format(depth + 1), format(depth + 1)] }),
        () => ({ type: 'or', elements: [format(depth + 1), format(depth + 1)] }),
        () => ({ type: 'star', content: format(depth + 1) }),
        () => ({
          type: 'token_triggered_tags',
          trigger_tokens: [tokenRef()],
          tags: [tag()],
          at_least_one: random() < 0.3,
          stop_after_first: random() < 0.3,
        }),
        () => ({ type: 'token_dispatch', rules: [[tokenRef(), format(depth + 1)]], loop: random() < 0.5 }),
      ])();
    };
    let compiled = 0;
    for (let round = 0; round < 150; round++) {
      const f = format(0);
      let grammar: ReturnType<typeof grammarOf>;
      try {
        grammar = grammarOf(f);
      } catch (err) {
        expect(err, JSON.stringify(f)).toBeInstanceOf(GuideError);
        continue;
      }
      compiled++;
      const state = tokenGuide(tokenizer, grammar).start();
      for (let step = 0; step < 12; step++) {
        const allowed = state.allowedTokens([EOS]);
        expect(allowed.length, JSON.stringify(f)).toBeGreaterThan(0);
        const t = allowed[Math.floor(random() * allowed.length)];
        if (t === EOS) break;
        state.advance(t);
        // Every token the mask allows keeps the output inside the grammar.
        expect(state.isDead, JSON.stringify(f)).toBe(false);
      }
    }
    expect(compiled).toBeGreaterThan(30);
  });

  it('random walks through the masks stay inside the grammar and end where it may', () => {
    const f = {
      type: 'token_triggered_tags',
      trigger_tokens: [TOOL],
      tags: [
        {
          type: 'tag',
          begin: { type: 'token', token: TOOL },
          content: {
            type: 'json_schema',
            json_schema: { type: 'object', properties: { city: { type: 'string' } } },
          },
          end: { type: 'token', token: END_TOOL },
        },
      ],
    };
    const guide = tokenGuide(tokenizer, grammarOf(f));
    const random = mulberry32(7);
    for (let walkNo = 0; walkNo < 30; walkNo++) {
      const state = guide.start();
      const ids: number[] = [];
      for (let step = 0; step < 40; step++) {
        const allowed = state.allowedTokens([EOS]);
        // Lean toward the trigger and the end so that calls open and close.
        const pick =
          allowed.includes(TOOL) && random() < 0.2
            ? TOOL
            : allowed.includes(END_TOOL) && random() < 0.3
              ? END_TOOL
              : allowed[Math.floor(random() * allowed.length)];
        if (pick === EOS) break;
        ids.push(pick);
        state.advance(pick);
        expect(state.isDead, JSON.stringify(ids)).toBe(false);
      }
      // What it wrote parses: every call's text between TOOL and END_TOOL is JSON.
      let call: number[] | null = null;
      for (const t of ids) {
        if (t === TOOL) call = [];
        else if (t === END_TOOL && call) {
          const text = tokenizer.decode(call);
          expect(() => JSON.parse(text), text).not.toThrow();
          call = null;
        } else call?.push(t);
      }
    }
  });
});
