import { describe, expect, it } from 'vitest';
import { CliError, parseCliOptions, parseLoraModule } from '../../server/cli-options.js';

function serve(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const command = parseCliOptions(argv, env);
  if (command.kind !== 'serve') throw new Error('expected serve');
  return command.options;
}

describe('parseCliOptions', () => {
  it('has defaults that serve the embedded model on 127.0.0.1:8000', () => {
    expect(serve([])).toMatchObject({
      model: null,
      loraModules: [],
      host: '127.0.0.1',
      port: 8000,
      engine: 'auto',
      dtype: 'auto',
      maxModelLen: null,
      seed: null,
    });
  });

  it('reads the shutdown and connection flags, defaulting to a 30 s drain', () => {
    expect(serve([])).toMatchObject({
      shutdownTimeoutSeconds: 30,
      maxN: 16,
      maxConnections: 1024,
      timeoutKeepAliveSeconds: 5,
    });
    expect(
      serve(['--shutdown-timeout', '0', '--max-n=2', '--max-connections', '10', '--timeout-keep-alive', '7']),
    ).toMatchObject({ shutdownTimeoutSeconds: 0, maxN: 2, maxConnections: 10, timeoutKeepAliveSeconds: 7 });
    expect(() => serve(['--shutdown-timeout', '-1'])).toThrow(CliError);
    expect(() => serve(['--max-n', '0'])).toThrow(/--max-n/);
  });

  it('reads vLLM-spelled flags in both --flag value and --flag=value form', () => {
    const options = serve([
      '--model',
      '/m',
      '--served-model-name=base',
      '--host',
      '0.0.0.0',
      '--port=9000',
      '--max-model-len',
      '256',
      '--max-num-seqs',
      '4',
      '--max-num-batched-tokens',
      '64',
      '--engine',
      'reference',
      '--pool-size',
      '64MiB',
      '--chat-template',
      '/t.jinja',
      '--seed',
      '7',
    ]);
    expect(options).toMatchObject({
      model: '/m',
      servedModelName: 'base',
      host: '0.0.0.0',
      port: 9000,
      maxModelLen: 256,
      maxNumSeqs: 4,
      maxNumBatchedTokens: 64,
      engine: 'reference',
      poolSize: '64MiB',
      chatTemplate: '/t.jinja',
      seed: 7,
    });
  });

  it('reads the scheduling flags, slora by default, and refuses bad values by name', () => {
    expect(serve(['--scheduling-policy=fcfs']).schedulingPolicy).toBe('fcfs');
    expect(serve([])).toMatchObject({
      schedulingPolicy: 'slora',
      maxLorasPerBatch: null,
      maxQueue: null,
      sloTtftSeconds: null,
    });
    expect(
      serve([
        '--scheduling-policy',
        'slora',
        '--max-loras-per-batch',
        '3',
        '--max-queue=12',
        '--slo-ttft',
        '2.5',
      ]),
    ).toMatchObject({ schedulingPolicy: 'slora', maxLorasPerBatch: 3, maxQueue: 12, sloTtftSeconds: 2.5 });
    expect(() => serve(['--scheduling-policy', 'lifo'])).toThrow(
      /--scheduling-policy: "lifo" is not one of fcfs, slora/,
    );
    expect(() => serve(['--slo-ttft', '0'])).toThrow(/--slo-ttft: expected a positive number of seconds/);
    expect(() => serve(['--slo-ttft', '-1'])).toThrow(CliError);
    expect(() => serve(['--max-queue', '0'])).toThrow(/--max-queue/);
    expect(() => serve(['--scheduling-policy', 'fcfs', '--slo-ttft', '5'])).toThrow(
      /--slo-ttft needs --scheduling-policy slora/,
    );
    expect(() => serve(['--scheduling-policy', 'fcfs', '--max-loras-per-batch', '2'])).toThrow(
      /--max-loras-per-batch needs --scheduling-policy slora/,
    );
  });

  it('takes --lora-modules repeated, several after one flag, and in JSON form', () => {
    const options = serve([
      '--lora-modules',
      'a=/x',
      'b=/y',
      '--lora-modules',
      '{"name": "c", "path": "/z"}',
    ]);
    expect(options.loraModules).toEqual([
      { name: 'a', path: '/x' },
      { name: 'b', path: '/y' },
      { name: 'c', path: '/z' },
    ]);
  });

  it('honours PORT and a positional model (vllm serve MODEL)', () => {
    expect(serve(['/models/m'], { PORT: '8123' })).toMatchObject({ model: '/models/m', port: 8123 });
  });

  it('returns help text for --help', () => {
    const command = parseCliOptions(['--help']);
    expect(command.kind).toBe('help');
    if (command.kind === 'help') expect(command.text).toContain('--lora-modules');
  });

  it.each([
    [['--frobnicate'], 'unknown flag --frobnicate'],
    [['--port', 'x'], '--port'],
    [['--port', '70000'], '--port'],
    [['--engine', 'cuda'], 'cuda'],
    [['--dtype', 'bf16'], '--dtype: "bf16" is not one of auto, f32, f16'],
    [['--pool-size', '3 parsecs'], '--pool-size'],
    [['--model'], 'needs a value'],
    [['--lora-modules', 'noequals'], 'NAME=DIR'],
    [['--lora-modules', '{"name": 1}'], 'JSON form'],
    [['--lora-modules', 'a=/x', 'a=/y'], 'twice'],
    [['--max-num-seqs', '128', '--max-num-batched-tokens', '64'], 'at least'],
    [['/a', '/b'], 'unexpected argument'],
  ])('rejects %j with a clear message', (argv, message) => {
    expect(() => parseCliOptions(argv)).toThrow(CliError);
    expect(() => parseCliOptions(argv)).toThrow(message);
  });

  it('reads --dtype for every engine (the engine factory refuses f16 where it cannot run)', () => {
    expect(serve(['--engine', 'webgpu', '--dtype', 'f16'])).toMatchObject({ engine: 'webgpu', dtype: 'f16' });
    expect(serve(['--dtype=f32'])).toMatchObject({ engine: 'auto', dtype: 'f32' });
  });

  it('keeps = inside an adapter path', () => {
    expect(parseLoraModule('a=/p=q')).toEqual({ name: 'a', path: '/p=q' });
  });
});
