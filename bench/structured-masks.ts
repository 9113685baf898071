/**
 * What structured output costs the step loop: the time to find the tokens a grammar state allows
 * over a 32,000-token vocabulary (the synthetic TinyLlama-shaped tokenizer, byte-level BPE), per
 * generated token, for json_object, JSON Schemas, a choice list, a regex, a GBNF grammar and two
 * structural tags (free text with tool calls; free tokens with calls between control tokens), and
 * the time to advance the state by the token. Each grammar runs seeded
 * random walks: every step computes the allowed set (cached by state), samples one of its tokens
 * uniformly, and advances. Uniform sampling is a worst case for the cache: it wanders into states
 * (deep strings, whitespace runs) a trained model rarely visits.
 *
 *   npx tsx bench/structured-masks.ts [--walks N] [--steps N]
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { TINYLLAMA_SPEC, writeSyntheticModel } from '../model/synthetic.js';
import { TextTokenizer } from '../model/tokenizer.js';
import { mulberry32 } from '../scheduler/prng.js';
import {
  choiceGrammar,
  ebnfGrammar,
  type Grammar,
  jsonObjectGrammar,
  regexGrammar,
} from '../structured/grammar-nodes.js';
import { compileJsonSchema } from '../structured/json-schema.js';
import { tokenGuide, tokenVocabulary } from '../structured/request-guide.js';
import { structuralTagGrammar } from '../structured/structural-tag.js';
import { machineContext, writeBenchReport } from './report.js';

const { values: args } = parseArgs({
  options: { walks: { type: 'string', default: '8' }, steps: { type: 'string', default: '200' } },
});
const walks = Number(args.walks);
const steps = Number(args.steps);

const SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 40 },
    age: { type: 'integer' },
    tags: { type: 'array', items: { type: 'string' }, maxItems: 5 },
    mood: { enum: ['happy', 'sad', 'calm'] },
    address: {
      type: 'object',
      properties: { city: { type: 'string' }, zip: { type: ['string', 'null'] } },
      required: ['city'],
    },
  },
  required: ['name', 'age', 'mood'],
};

/** Function calls nested in their arguments: recursion the matcher's stacks follow. */
const CALLS_GRAMMAR = `
root ::= call ("; " call)*
call ::= name "(" (arg (", " arg)*)? ")"
name ::= [a-z] [a-z_]{0,11}
arg  ::= [0-9]+ | "'" [^'\\n]* "'" | call
`;

/** Free text in which `<function=` opens a call of one of two functions (vLLM's structural tag example). */
const TOOL_CALLS_TAG = {
  type: 'structural_tag',
  format: {
    type: 'triggered_tags',
    triggers: ['<function='],
    tags: [
      {
        type: 'tag',
        begin: '<function=get_weather>',
        content: { type: 'json_schema', json_schema: SCHEMA },
        end: '</function>',
      },
      {
        type: 'tag',
        begin: '<function=get_time>',
        content: {
          type: 'json_schema',
          json_schema: { type: 'object', properties: { tz: { type: 'string' } } },
        },
        end: '</function>',
      },
    ],
  },
};

const BOUNDED_SCHEMA = {
  type: 'object',
  properties: {
    code: { type: 'string', pattern: '^[A-Z]{3}-[0-9]{4}$' },
    level: { type: 'integer', minimum: 1, maximum: 250 },
    ratio: { type: 'number', minimum: 0, exclusiveMaximum: 1 },
  },
  required: ['code', 'level', 'ratio'],
};

/**
 * Free tokens; the control token <unk> (the synthetic vocabulary's one special token besides BOS
 * and EOS, standing for a model's <|tool|>) opens a call whose arguments follow SCHEMA and which
 * the same token closes (token_triggered_tags, with token begin and end).
 */
function controlTokenCalls(): unknown {
  const call = {
    type: 'tag',
    begin: { type: 'token', token: '<unk>' },
    content: { type: 'json_schema', json_schema: SCHEMA },
    end: { type: 'token', token: '<unk>' },
  };
  return {
    type: 'structural_tag',
    format: { type: 'token_triggered_tags', trigger_tokens: ['<unk>'], tags: [call] },
  };
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

async function main(): Promise<void> {
  const modelDir = join(process.cwd(), '.cache', 'bench', `tinyllama-f32-${TINYLLAMA_SPEC.numLayers}l`);
  try {
    readFileSync(join(modelDir, 'tokenizer.json'));
  } catch {
    await writeSyntheticModel(modelDir, TINYLLAMA_SPEC, { shards: 2 });
  }
  const tokenizer = await TextTokenizer.fromDir(modelDir);
  let t0 = performance.now();
  tokenizer.tokenBytes();
  const bytesMs = performance.now() - t0;
  const eos = tokenizer.encode('</s>', false);
  if (eos.length !== 1 || tokenizer.tokenBytes()[eos[0]] !== null) throw new Error('no EOS token </s>');
  const grammars: Array<[string, () => Grammar]> = [
    ['json_object', jsonObjectGrammar],
    ['json_schema (5 properties, nested)', () => compileJsonSchema(SCHEMA, 'response_format')],
    ['guided_choice (4 choices)', () => choiceGrammar(['red', 'green', 'blue sky', 'rose'], 'guided_choice')],
    [
      'guided_regex (a date, then words)',
      () => regexGrammar('[0-9]{4}-[0-9]{2}-[0-9]{2}( [a-z]+){1,3}', 'guided_regex'),
    ],
    ['guided_grammar (nested calls, GBNF)', () => ebnfGrammar(CALLS_GRAMMAR, 'guided_grammar')],
    ['json_schema with pattern and bounds', () => compileJsonSchema(BOUNDED_SCHEMA, 'response_format')],
    [
      'structural_tag (free text, calls after "<function=")',
      () => structuralTagGrammar(TOOL_CALLS_TAG, 'response_format'),
    ],
    [
      'structural_tag, token-level (free tokens, a call between control tokens)',
      () => structuralTagGrammar(controlTokenCalls(), 'response_format', () => tokenVocabulary(tokenizer)),
    ],
  ];
  t0 = performance.now();
  tokenGuide(tokenizer, jsonObjectGrammar()); // builds the vocabulary trie once per tokenizer
  const trieMs = performance.now() - t0;
  const rows: Array<Record<string, string | number>> = [];
  for (const [label, grammar] of grammars) {
    const guide = tokenGuide(tokenizer, grammar());
    const times: number[] = [];
    const advances: number[] = [];
    const sizes: number[] = [];
    let ended = 0;
    let tokens = 0;
    for (let w = 0; w < walks; w++) {
      const rand = mulberry32(w + 1);
      const state = guide.start();
      for (let s = 0; s < steps; s++) {
        const t = performance.now();
        const allowed = state.allowedTokens(eos);
        times.push(performance.now() - t);
        sizes.push(allowed.length);
        const next = allowed[Math.floor(rand() * allowed.length)];
        tokens++;
        if (eos.includes(next)) {
          ended++;
          break;
        }
        const a = performance.now();
        state.advance(next);
        advances.push(performance.now() - a);
      }
    }
    rows.push({
      grammar: label,
      'tokens sampled': tokens,
      'walks ended by EOS': `${ended} of ${walks}`,
      'mask ms median': quantile(times, 0.5),
      'mask ms p90': quantile(times, 0.9),
      'mask ms max': Math.max(...times),
      'allowed tokens median': quantile(sizes, 0.5),
      'advance ms median': quantile(advances, 0.5),
      'advance ms max': Math.max(...advances),
    });
    process.stderr.write(`[bench:structured-masks] ${label}: ${tokens} tokens\n`);
  }
  writeBenchReport({
    name: 'structured-masks',
    title: 'Structured output: allowed-token masks over a 32k vocabulary',
    context: {
      ...machineContext(),
      tokenizer: `synthetic TinyLlama shape, byte-level BPE, ${tokenizer.vocabSize} tokens`,
      walks,
      'steps per walk (most)': steps,
      'token bytes (once per tokenizer) ms': bytesMs.toFixed(1),
      'vocabulary trie (once per tokenizer) ms': trieMs.toFixed(1),
    },
    rows,
    notes: [
      'A mask is the sorted list of token ids whose bytes the grammar accepts from the state (plus EOS where the output may end); masks are cached per grammar by state, so repeated states cost a lookup.',
      'Tokens are sampled uniformly from the mask: a worst case for the cache next to a trained model.',
    ],
    chart: {
      unit: 'ms per token (p90)',
      bars: rows.map((r) => ({ label: String(r.grammar), value: Number(r['mask ms p90']) })),
    },
  });
}

await main();
