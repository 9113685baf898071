import { describe, expect, it } from 'vitest';
import { BenchArgsError, parseServeBenchArgs, type ServeBenchArgs } from '../../bench/serve/serve-args.js';
import { SseParser } from '../../bench/serve/sse.js';
import {
  mean,
  meetsSlo,
  parseGoodput,
  percentile,
  percentileKey,
  std,
} from '../../bench/serve/statistics.js';
import type { RequestOutcome } from '../../bench/serve/stream-request.js';
import { maxConcurrentRequests, summarize, summarizeByModel } from '../../bench/serve/summary.js';

describe('percentile (numpy linear)', () => {
  it('interpolates between closest ranks as numpy.percentile does', () => {
    const values = [4, 1, 3, 2];
    expect(percentile(values, 50)).toBeCloseTo(2.5, 12);
    expect(percentile(values, 90)).toBeCloseTo(3.7, 12);
    expect(percentile(values, 99)).toBeCloseTo(3.97, 12);
    expect(percentile(values, 0)).toBe(1);
    expect(percentile(values, 100)).toBe(4);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBe(0);
    expect(values).toEqual([4, 1, 3, 2]);
  });

  it('has numpy-style mean, population std and vLLM key names', () => {
    expect(mean([1, 2, 3, 4])).toBe(2.5);
    expect(std([1, 2, 3, 4])).toBeCloseTo(Math.sqrt(1.25), 12);
    expect(std([])).toBe(0);
    expect(percentileKey(99)).toBe('p99');
    expect(percentileKey(99.9)).toBe('p99.9');
    expect(() => percentile([1], 101)).toThrow(RangeError);
  });
});

describe('--goodput', () => {
  it('parses KEY:MS pairs and judges requests against every given objective', () => {
    const slo = parseGoodput(['ttft:500', 'tpot:50.5']);
    expect(slo).toEqual({ ttft: 500, tpot: 50.5 });
    expect(parseGoodput(['e2el:600'])).toEqual({ e2el: 600 });
    expect(meetsSlo(slo, { ttft: 500, tpot: 50, e2el: 99_999 })).toBe(true);
    expect(meetsSlo(slo, { ttft: 501, tpot: 50, e2el: 0 })).toBe(false);
    expect(meetsSlo(slo, { ttft: 10, tpot: 51, e2el: 0 })).toBe(false);
  });

  it.each([
    [['ttft'], /KEY:MILLISECONDS/],
    [['itl:5'], /unknown metric "itl"/],
    [['ttft:-1'], /positive/],
    [['e2el'], /KEY:MILLISECONDS/],
    [['e2el:soon'], /positive/],
  ])('refuses %j', (pairs, message) => {
    expect(() => parseGoodput(pairs)).toThrow(message);
  });
});

function outcome(partial: Partial<RequestOutcome>): RequestOutcome {
  return {
    index: 0,
    model: 'base',
    success: true,
    error: '',
    promptTokens: 10,
    outputTokens: 5,
    ttft: 0.1,
    itl: [0.05, 0.05, 0.05, 0.05],
    latency: 0.3,
    startOffset: 0,
    generatedText: 'abcde',
    ...partial,
  };
}

describe('summarize', () => {
  const outcomes = [
    outcome({ index: 0, model: 'a', ttft: 0.1, latency: 0.5, outputTokens: 5, startOffset: 0 }),
    outcome({
      index: 1,
      model: 'a',
      ttft: 0.3,
      latency: 0.7,
      outputTokens: 3,
      itl: [0.2, 0.2],
      startOffset: 0.2,
    }),
    outcome({ index: 2, model: 'b', ttft: 0.2, latency: 0.2, outputTokens: 1, itl: [], startOffset: 1.0 }),
    outcome({ index: 3, model: 'b', success: false, error: 'HTTP 503', outputTokens: 0, startOffset: 1.5 }),
  ];
  const options = { percentiles: [50, 99], metrics: ['ttft', 'tpot', 'itl', 'e2el'] as const, slo: null };

  it("computes vLLM's figures over completed requests", () => {
    const s = summarize(outcomes, 2, options);
    expect(s.completed).toBe(3);
    expect(s.failed).toBe(1);
    expect(s.total_input_tokens).toBe(30);
    expect(s.total_output_tokens).toBe(9);
    expect(s.request_throughput).toBe(1.5);
    expect(s.output_throughput).toBe(4.5);
    expect(s.total_token_throughput).toBe(19.5);
    expect(s.mean_ttft_ms).toBeCloseTo(200, 9);
    // TPOT = (latency − ttft)/(tokens − 1), only for outputs longer than one token.
    expect(s.mean_tpot_ms).toBeCloseTo((100 + 200) / 2, 9);
    expect(s.median_itl_ms).toBeCloseTo(50, 9);
    // rank 0.99·2 = 1.98 between 500 and 700
    expect(s.p99_e2el_ms).toBeCloseTo(696, 9);
    expect(s.request_goodput).toBeNull();
    expect(s).not.toHaveProperty('slo_attainment');
    expect(s.max_concurrent_requests).toBe(2);
  });

  it('counts goodput over completed requests and attainment over all requests', () => {
    const s = summarize(outcomes, 2, { ...options, slo: { ttft: 250, tpot: 150 } });
    // request 0 (ttft 100, tpot 100) and request 2 (ttft 200, one token) meet it; 1 misses ttft; 3 failed.
    expect(s.request_goodput).toBe(1);
    expect(s.slo_attainment).toBe(0.5);
  });

  it('breaks the figures down per model', () => {
    const per = summarizeByModel(outcomes, 2, { ...options, slo: { e2el: 600 } });
    expect(Object.keys(per)).toEqual(['a', 'b']);
    expect(per.a.completed).toBe(2);
    expect(per.a.slo_attainment).toBe(0.5);
    expect(per.b.failed).toBe(1);
    expect(per.b.total_output_tokens).toBe(1);
  });

  it('finds the peak of requests in flight', () => {
    expect(
      maxConcurrentRequests([
        outcome({ startOffset: 0, latency: 1 }),
        outcome({ startOffset: 0.5, latency: 1 }),
        outcome({ startOffset: 1, latency: 1 }),
        outcome({ startOffset: 3, latency: 1 }),
      ]),
    ).toBe(2);
  });
});

describe('SseParser', () => {
  it('reassembles events split anywhere, CRLF and multi-byte characters included', () => {
    const text = 'data: {"a":1}\r\n\r\n: comment\nevent: x\ndata: é€\ndata: 2\n\ndata: [DONE]\n\n';
    const bytes = new TextEncoder().encode(text);
    for (let cut = 1; cut < bytes.length; cut++) {
      const parser = new SseParser();
      const events = [...parser.push(bytes.slice(0, cut)), ...parser.push(bytes.slice(cut)), ...parser.end()];
      expect(events).toEqual(['{"a":1}', 'é€\n2', '[DONE]']);
    }
  });

  it('keeps an event whose closing blank line never came', () => {
    const parser = new SseParser();
    expect(parser.push(new TextEncoder().encode('data: last'))).toEqual([]);
    expect(parser.end()).toEqual(['last']);
  });
});

describe('bench:serve flags', () => {
  const parse = (argv: string[]) => parseServeBenchArgs(argv) as ServeBenchArgs;

  it('takes vLLM spellings, lists up to the next flag, and has defaults', () => {
    const args = parse([
      '--request-rate',
      '1',
      '2.5',
      'inf',
      '--lora-modules',
      'a',
      'b',
      '--goodput',
      'ttft:100',
      '--max-concurrency=4',
      '--ignore-eos',
    ]);
    expect(args.requestRates).toEqual([1, 2.5, Number.POSITIVE_INFINITY]);
    expect(args.loraModules).toEqual(['a', 'b']);
    expect(args.slo).toEqual({ ttft: 100 });
    expect(args.maxConcurrency).toBe(4);
    expect(args.ignoreEos).toBe(true);
    expect(args.baseUrl).toBe('http://127.0.0.1:8000');
    expect(parse(['--port', '9001']).baseUrl).toBe('http://127.0.0.1:9001');
    expect(parse(['--host', 'localhost', '--port', '9']).baseUrl).toBe('http://localhost:9');
    expect(args.endpoint).toBe('/v1/completions');
    expect(args.promptFormat).toBe('ids');
    expect(args.percentileMetrics).toEqual(['ttft', 'tpot', 'itl', 'e2el']);
    expect(args.metricPercentiles).toEqual([90, 99]);
    expect(parse(['--endpoint', '/v1/chat/completions']).promptFormat).toBe('text');
    expect(parseServeBenchArgs(['--help'])).toBe('help');
  });

  it.each([
    [['--base-url', 'http://example.com:8000'], /this machine/],
    [['--bogus'], /unknown flag --bogus/],
    [['--num-prompts', '0'], /--num-prompts must be an integer/],
    [['--request-rate', '0'], /--request-rate must be a number > 0/],
    [['--lora-assignment', 'zipf'], /random, round-robin, power-law/],
    [['--endpoint', '/v1/chat/completions', '--prompt-format', 'ids'], /chat messages are text/],
    [['--goodput', 'ttft:0'], /positive/],
    [['--random-range-ratio', '1'], /\[0, 1\)/],
    [['--seed', '1', '--seed', '2'], /given twice/],
    [['--lora-modules'], /at least one value/],
  ])('refuses %j with a message naming the flag', (argv, message) => {
    expect(() => parseServeBenchArgs(argv)).toThrow(BenchArgsError);
    expect(() => parseServeBenchArgs(argv)).toThrow(message);
  });
});
