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
    expect(serve([]).streamStallTimeoutSeconds).toBe(60);
    expect(serve(['--stream-stall-timeout', '5']).streamStallTimeoutSeconds).toBe(5);
    expect(() => serve(['--stream-stall-timeout', '0'])).toThrow(/--stream-stall-timeout/);
  });

  it("says at start-up that vLLM's VLLM_ALLOW_RUNTIME_LORA_UPDATING does not open runtime loads without --lora-root", () => {
    const notice = /VLLM_ALLOW_RUNTIME_LORA_UPDATING is set, but .*--lora-root DIR/;
    expect(serve([], { VLLM_ALLOW_RUNTIME_LORA_UPDATING: 'True' }).notices).toEqual([
      expect.stringMatching(notice),
    ]);
    expect(serve(['--lora-root', '/adapters'], { VLLM_ALLOW_RUNTIME_LORA_UPDATING: '1' }).notices).toEqual(
      [],
    );
    expect(serve([], { VLLM_ALLOW_RUNTIME_LORA_UPDATING: '0' }).notices).toEqual([]);
  });

  it('serves the development endpoints when VLLM_SERVER_DEV_MODE is a nonzero integer, as vLLM reads it', () => {
    expect(serve([]).devEndpoints).toBe(false);
    expect(serve([], { VLLM_SERVER_DEV_MODE: '1' }).devEndpoints).toBe(true);
    expect(serve([], { VLLM_SERVER_DEV_MODE: '0' }).devEndpoints).toBe(false);
    expect(() => serve([], { VLLM_SERVER_DEV_MODE: 'yes' })).toThrow(
      /VLLM_SERVER_DEV_MODE: expected an integer/,
    );
  });

  it('reads --cache-packed-weights, off by default', () => {
    expect(serve([]).cachePackedWeights).toBe(false);
    expect(serve(['--cache-packed-weights', '--engine', 'onnx'])).toMatchObject({
      cachePackedWeights: true,
      engine: 'onnx',
    });
  });

  it("reads vLLM's access-log flags, --uds and --disable-sliding-window", () => {
    expect(serve([])).toMatchObject({
      accessLog: true,
      accessLogExcludedPaths: [],
      uds: null,
      disableSlidingWindow: false,
    });
    expect(
      serve([
        '--disable-uvicorn-access-log',
        '--disable-access-log-for-endpoints',
        '/health, /metrics,',
        '--uds',
        '/run/loom.sock',
        '--disable-sliding-window',
      ]),
    ).toMatchObject({
      accessLog: false,
      accessLogExcludedPaths: ['/health', '/metrics'],
      uds: '/run/loom.sock',
      disableSlidingWindow: true,
    });
    expect(() => serve(['--disable-access-log-for-endpoints', 'health'])).toThrow(/"health" is not a path/);
    expect(serve(['--hf-config-path', '/configs/llama']).hfConfigPath).toBe('/configs/llama');
    expect(serve([]).hfConfigPath).toBeNull();
  });

  it("reads LoRAX's --watermark-gamma and --watermark-delta, TGI's 0.5 and 2 by default", () => {
    expect(serve([])).toMatchObject({ watermarkGamma: 0.5, watermarkDelta: 2 });
    expect(serve(['--watermark-gamma', '0.25', '--watermark-delta', '-1.5'])).toMatchObject({
      watermarkGamma: 0.25,
      watermarkDelta: -1.5,
    });
    expect(() => serve(['--watermark-gamma', '0'])).toThrow(
      /--watermark-gamma: expected a fraction in \(0, 1\]/,
    );
    expect(() => serve(['--watermark-gamma', '1.5'])).toThrow(/--watermark-gamma/);
    expect(() => serve(['--watermark-delta', 'inf'])).toThrow(/--watermark-delta: expected a number/);
    expect(() => serve(['--watermark-delta', ' '])).toThrow(/--watermark-delta: expected a number/);
  });

  it("reads vLLM's --rope-scaling/--rope-theta into the overrides (over --hf-overrides's) and --kv-cache-memory-bytes as the pool", () => {
    const options = serve([
      '--rope-theta',
      '500000',
      '--hf-overrides',
      '{"rope_theta": 1, "max_position_embeddings": 4096}',
      '--rope-scaling',
      '{"rope_type": "dynamic", "factor": 2.0}',
    ]);
    expect(options.hfOverrides).toEqual({
      rope_theta: 500000,
      max_position_embeddings: 4096,
      rope_scaling: { rope_type: 'dynamic', factor: 2 },
    });
    expect(() => serve(['--rope-theta', '-1'])).toThrow(/--rope-theta: expected a positive number/);
    expect(serve(['--kv-cache-memory-bytes', '2G']).poolSize).toBe(String(2 * 2 ** 30));
    const both = serve(['--gpu-memory-utilization', '0.5', '--kv-cache-memory-bytes', '1000000']);
    expect(both.poolSize).toBe('1000000');
    expect(both.gpuMemoryUtilization).toBeNull();
    expect(both.notices).toContain(
      '--gpu-memory-utilization: ignored, --kv-cache-memory-bytes sizes the pool',
    );
    expect(() => serve(['--pool-size', '1GiB', '--kv-cache-memory-bytes', '1000'])).toThrow(
      /both size the pool/,
    );
  });

  it('refuses by name, with the reason, the vLLM flags whose work Loom cannot do', () => {
    expect(() => serve(['--enable-sleep-mode'])).toThrow(
      /--enable-sleep-mode is not supported: vLLM's sleep mode/,
    );
    expect(() => serve(['--middleware', 'my.mod.Middleware'])).toThrow(
      /--middleware is not supported: .*no Python/,
    );
    expect(() => serve(['--otlp-traces-endpoint', 'http://collector:4317'])).toThrow(/no network call/);
    expect(() => serve(['--no-such-flag'])).toThrow('unknown flag --no-such-flag (see --help)');
    // The multimodal and kernel-choice flags change nothing here: accepted, with their log line.
    const options = serve([
      '--enable-expert-parallel',
      '--model-impl',
      'transformers',
      '--disable-cascade-attn',
    ]);
    expect(options.notices).toEqual([
      expect.stringMatching(/^--enable-expert-parallel: ignored/),
      expect.stringMatching(/^--model-impl transformers: ignored/),
      expect.stringMatching(/^--disable-cascade-attn: ignored/),
    ]);
    expect(() => serve(['--model-impl', 'terratorch'])).toThrow(
      /--model-impl: "terratorch" is not supported/,
    );
    expect(() => serve(['--task', 'embed'])).toThrow(/not pooling tasks/);
    expect(() => serve(['--worker-extension-cls', 'x.Y'])).toThrow(
      /--worker-extension-cls is not supported: .*load_inplace/,
    );
  });

  it("reads vLLM's h11 header limits: bytes of the request line and headers, and the header count", () => {
    expect(serve([])).toMatchObject({ maxHeaderBytes: 16384, maxHeaderCount: 256 });
    expect(
      serve(['--h11-max-incomplete-event-size', '8388608', '--h11-max-header-count', '64']),
    ).toMatchObject({ maxHeaderBytes: 8388608, maxHeaderCount: 64 });
    expect(() => serve(['--h11-max-incomplete-event-size', '10'])).toThrow(/--h11-max-incomplete-event-size/);
    expect(() => serve(['--h11-max-header-count', '0'])).toThrow(/--h11-max-header-count/);
  });

  it("reads vLLM's --max-logprobs: 20 by default, -1 for no cap", () => {
    expect(serve([]).maxLogprobs).toBe(20);
    expect(serve(['--max-logprobs', '64']).maxLogprobs).toBe(64);
    expect(serve(['--max-logprobs=0']).maxLogprobs).toBe(0);
    expect(serve(['--max-logprobs', '-1']).maxLogprobs).toBe(-1);
    expect(() => serve(['--max-logprobs', '-2'])).toThrow(/--max-logprobs/);
    expect(() => serve(['--max-logprobs', 'all'])).toThrow(/--max-logprobs/);
  });

  it("reads vLLM's --enable-request-id-headers (off by default)", () => {
    expect(serve([]).enableRequestIdHeaders).toBe(false);
    expect(serve(['--enable-request-id-headers']).enableRequestIdHeaders).toBe(true);
  });

  it("reads vLLM's --return-tokens-as-token-ids, --response-role and the accepted --lora-dtype auto", () => {
    expect(serve([]).returnTokensAsTokenIds).toBe(false);
    expect(serve(['--return-tokens-as-token-ids']).returnTokensAsTokenIds).toBe(true);
    expect(serve([]).responseRole).toBe('assistant');
    expect(serve(['--response-role', 'bot']).responseRole).toBe('bot');
    expect(serve(['--lora-dtype', 'auto', '--disable-fastapi-docs']).notices).toHaveLength(2);
    expect(() => serve(['--lora-dtype', 'float16'])).toThrow(/--lora-dtype/);
  });

  it("reads vLLM's --tokenizer: the model's directory by default", () => {
    expect(serve([]).tokenizer).toBeNull();
    expect(serve(['--tokenizer', '/models/tok']).tokenizer).toBe('/models/tok');
  });

  it("reads vLLM's --logprobs-mode: raw_logprobs by default, its four values, nothing else", () => {
    expect(serve([]).logprobsMode).toBe('raw_logprobs');
    for (const mode of ['raw_logits', 'processed_logprobs', 'processed_logits'])
      expect(serve(['--logprobs-mode', mode]).logprobsMode).toBe(mode);
    expect(() => serve(['--logprobs-mode', 'processed'])).toThrow(
      /--logprobs-mode: "processed" is not one of/,
    );
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
    expect(serve(['--scheduling-policy', 'priority']).schedulingPolicy).toBe('priority');
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
      /--scheduling-policy: "lifo" is not one of fcfs, slora, priority/,
    );
    expect(serve([])).toMatchObject({
      maxStepSeconds: 4,
      enablePrefixCaching: true,
      enablePromptTokensDetails: false,
    });
    expect(serve(['--max-step-time', '2.5']).maxStepSeconds).toBe(2.5);
    expect(serve(['--max-step-time', '0']).maxStepSeconds).toBeNull();
    expect(() => serve(['--max-step-time', '-1'])).toThrow(/--max-step-time: expected a number of seconds/);
    expect(serve(['--no-enable-prefix-caching']).enablePrefixCaching).toBe(false);
    expect(serve(['--no-enable-prefix-caching', '--enable-prefix-caching']).enablePrefixCaching).toBe(true);
    expect(serve(['--enable-prompt-tokens-details']).enablePromptTokensDetails).toBe(true);
    expect(serve([])).toMatchObject({
      enableAutoToolChoice: false,
      toolCallParser: null,
      maxStoredResponses: 0,
    });
    expect(serve(['--max-stored-responses', '500']).maxStoredResponses).toBe(500);
    expect(serve([]).reasoningParser).toBeNull();
    expect(serve(['--reasoning-parser', 'deepseek_r1']).reasoningParser).toBe('deepseek_r1');
    expect(() => serve(['--reasoning-parser', 'qwen3'])).toThrow(
      /--reasoning-parser qwen3: Loom reads these reasoning formats: deepseek_r1/,
    );
    expect(() => serve(['--max-stored-responses', '-1'])).toThrow(/--max-stored-responses/);
    expect(serve(['--enable-auto-tool-choice', '--tool-call-parser', 'hermes'])).toMatchObject({
      enableAutoToolChoice: true,
      toolCallParser: 'hermes',
    });
    expect(serve(['--tool-call-parser=llama3_json']).toolCallParser).toBe('llama3_json');
    expect(() => serve(['--enable-auto-tool-choice'])).toThrow(
      /--enable-auto-tool-choice needs --tool-call-parser/,
    );
    for (const parser of ['mistral', 'pythonic', 'llama4_pythonic'])
      expect(serve([`--tool-call-parser=${parser}`]).toolCallParser).toBe(parser);
    expect(() => serve(['--tool-call-parser', 'granite'])).toThrow(
      /--tool-call-parser granite: Loom reads these tool-call formats: hermes, llama3_json, mistral/,
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
    expect(() => serve(['--scheduling-policy', 'priority', '--slo-ttft', '5'])).toThrow(
      /--slo-ttft needs --scheduling-policy slora \(priority never aborts early\)/,
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
    [
      ['--dtype', 'f8'],
      '--dtype: "f8" is not one of auto, float16, half, f16, float32, float, f32, bfloat16, bf16',
    ],
    [
      ['--quantization', 'awq'],
      '--quantization: "awq" is not supported; Loom quantizes the base weights itself',
    ],
    [['-q', 'int2'], '--quantization: "int2" is not supported'],
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

describe('flags a vLLM user types', () => {
  it('reads --api-key, and $LOOM_API_KEY or $VLLM_API_KEY when the flag is not given', () => {
    expect(serve([]).apiKeys).toEqual([]);
    expect(serve(['--api-key', 'k1']).apiKeys).toEqual(['k1']);
    expect(serve([], { LOOM_API_KEY: 'env-key' }).apiKeys).toEqual(['env-key']);
    expect(serve(['--api-key=flag-key'], { LOOM_API_KEY: 'env-key' }).apiKeys).toEqual(['flag-key']);
    expect(() => serve(['--api-key', ' '])).toThrow(/must not be empty/);
    // vLLM's --api-key takes several keys, any of which is accepted.
    expect(serve(['--api-key', 'k1', 'k2', '--port', '9000']).apiKeys).toEqual(['k1', 'k2']);
    // vLLM's variable: a deployment written for vLLM keeps its key.
    expect(serve([], { VLLM_API_KEY: 'vllm-key' }).apiKeys).toEqual(['vllm-key']);
    expect(serve([], { VLLM_API_KEY: 'same', LOOM_API_KEY: 'same' }).apiKeys).toEqual(['same']);
    expect(() => serve([], { VLLM_API_KEY: 'a', LOOM_API_KEY: 'b' })).toThrow(/both set, to different keys/);
  });

  it('hides adapter paths without an API key, shows them with one unless --hide-adapter-paths', () => {
    expect(serve([]).hideAdapterPaths).toBe(true);
    expect(serve(['--api-key', 'k']).hideAdapterPaths).toBe(false);
    expect(serve(['--api-key', 'k', '--hide-adapter-paths']).hideAdapterPaths).toBe(true);
  });

  it('reads --allowed-origins as a JSON list or a comma-separated list; CORS is off by default', () => {
    expect(serve([]).allowedOrigins).toEqual([]);
    expect(
      serve(['--allowed-origins', '["https://a.example","http://localhost:3000"]']).allowedOrigins,
    ).toEqual(['https://a.example', 'http://localhost:3000']);
    expect(serve(['--allowed-origins', 'https://a.example, *']).allowedOrigins).toEqual([
      'https://a.example',
      '*',
    ]);
    expect(() => serve(['--allowed-origins', '["https://a.example/path"]'])).toThrow(/not an origin/);
    expect(() => serve(['--allowed-origins', '[1]'])).toThrow(/list of origins/);
  });

  it('returns the version command for --version', () => {
    expect(parseCliOptions(['--model', 'x', '--version'])).toEqual({ kind: 'version' });
  });

  it('reads --log-level and $LOG_LEVEL, with Python spellings, and refuses unknown levels', () => {
    expect(serve([]).logLevel).toBe('info');
    expect(serve([], { LOG_LEVEL: 'debug' }).logLevel).toBe('debug');
    expect(serve(['--log-level', 'WARNING'], { LOG_LEVEL: 'debug' }).logLevel).toBe('warn');
    expect(serve(['--log-level=critical']).logLevel).toBe('fatal');
    expect(() => serve(['--log-level', 'loud'])).toThrow(/--log-level: "loud"/);
    expect(() => serve([], { LOG_LEVEL: 'loud' })).toThrow(/LOG_LEVEL: "loud"/);
  });

  it('switches request and stats logging, the last of --disable/--enable-log-requests winning', () => {
    expect(serve([])).toMatchObject({ logRequests: true, logStats: true });
    expect(serve(['--disable-log-requests', '--disable-log-stats'])).toMatchObject({
      logRequests: false,
      logStats: false,
    });
    expect(serve(['--disable-log-requests', '--enable-log-requests']).logRequests).toBe(true);
    expect(serve(['--no-enable-log-requests']).logRequests).toBe(false);
    expect(() => serve(['--disable-log-requests=1'])).toThrow(/takes no value/);
  });

  it("maps vLLM's dtype spellings, bfloat16 included", () => {
    for (const [spelling, dtype] of [
      ['float16', 'f16'],
      ['half', 'f16'],
      ['f16', 'f16'],
      ['bfloat16', 'bf16'],
      ['bf16', 'bf16'],
      ['float32', 'f32'],
      ['float', 'f32'],
      ['auto', 'auto'],
    ])
      expect(serve(['--dtype', spelling]).dtype).toBe(dtype);
    expect(() => serve(['--dtype', 'int8'])).toThrow(/"int8" is not one of/);
  });

  it("reads --quantization and vLLM's -q: int8, int4 or none", () => {
    expect(serve([]).quantization).toBeNull();
    expect(serve(['--quantization', 'int8']).quantization).toBe('int8');
    expect(serve(['-q', 'int4']).quantization).toBe('int4');
    expect(serve(['--quantization=none']).quantization).toBeNull();
  });

  it('sizes the pool from --gpu-memory-utilization as a fraction, never together with --pool-size', () => {
    const options = serve(['--gpu-memory-utilization', '0.5']);
    expect(options.gpuMemoryUtilization).toBe(0.5);
    expect(Number(options.poolSize)).toBe(0.5);
    expect(serve(['--gpu-memory-utilization', '1']).poolSize).toBe('1.000000');
    expect(() => serve(['--gpu-memory-utilization', '0'])).toThrow(/fraction in \(0, 1\]/);
    expect(() => serve(['--gpu-memory-utilization', '1.5'])).toThrow(/fraction/);
    expect(() => serve(['--gpu-memory-utilization', '0.5', '--pool-size', '1GiB'])).toThrow(
      /give one of them/,
    );
  });

  it('accepts --enable-lora and the vLLM flags Loom ignores, with one notice each', () => {
    const options = serve([
      '--enable-lora',
      '--trust-remote-code',
      '--enforce-eager',
      '--tensor-parallel-size',
      '1',
      '-pp',
      '1',
      '--load-format=safetensors',
      '--max-log-len',
      '100',
    ]);
    expect(options.notices).toHaveLength(7);
    expect(options.notices[0]).toMatch(/^--enable-lora: LoRA is always on/);
    expect(options.notices).toContain('--tensor-parallel-size 1: ignored, Loom runs on one device');
    expect(options.notices).toContain('--pipeline-parallel-size 1: ignored, Loom runs on one device');
  });

  it('refuses what an ignored flag cannot ignore: parallelism past one device, other formats', () => {
    expect(() => serve(['--tensor-parallel-size', '2'])).toThrow(
      /"2" is not supported; expected 1 .*tensor parallelism/,
    );
    expect(() => serve(['-tp', '4'])).toThrow(/--tensor-parallel-size/);
    expect(() => serve(['--load-format', 'pt'])).toThrow(/--load-format: "pt"/);
    expect(() => serve(['--trust-remote-code=true'])).toThrow(/takes no value/);
    expect(() => serve(['--enable-sleep-mode'])).toThrow(/--enable-sleep-mode is not supported/);
    expect(() => serve(['--kv-cache-dtype', 'fp8'])).toThrow(/fp8 KV cache/);
    expect(() => serve(['--distributed-executor-backend', 'ray'])).toThrow(/ray is not supported/);
  });

  it("accepts common vLLM deployment flags that change nothing in Loom's one process", () => {
    const options = serve([
      '--enable-chunked-prefill',
      '--swap-space',
      '16',
      '--max-seq-len-to-capture',
      '8192',
      '--uvicorn-log-level',
      'warning',
      '--kv-cache-dtype',
      'auto',
      '--distributed-executor-backend',
      'mp',
      '--fully-sharded-loras',
      '--enable-server-load-tracking',
    ]);
    expect(options.notices).toHaveLength(8);
    expect(options.notices).toContain(
      '--swap-space 16: ignored, Loom preempts by recomputing, never by swapping to host memory',
    );
  });

  it('accepts the scheduling, download and parallelism flags of copied vLLM command lines, and refuses values that would matter', () => {
    const options = serve(
      [
        '--block-size 16',
        '--num-scheduler-steps 1',
        '--cpu-offload-gb 0',
        '--preemption-mode recompute',
        '--async-scheduling',
        '--api-server-count 1',
        '--data-parallel-size 1',
        '--download-dir /tmp/models',
        '--revision main',
        '--root-path /v',
        '--expand-tools-even-if-tool-choice-none',
        '--max-num-partial-prefills 2',
        '--guided-decoding-backend xgrammar',
      ]
        .join(' ')
        .split(' '),
    );
    expect(options.notices).toHaveLength(13);
    expect(options.notices).toContain(
      '--download-dir /tmp/models: ignored, Loom downloads nothing: --model names a local folder',
    );
    expect(() => serve(['--num-scheduler-steps', '8'])).toThrow(/multi-step scheduling is not supported/);
    expect(() => serve(['--cpu-offload-gb', '4'])).toThrow(/offloading is not supported/);
    expect(() => serve(['--preemption-mode', 'swap'])).toThrow(/never by swapping/);
    expect(() => serve(['--data-parallel-size', '2'])).toThrow(/data parallelism/);
    expect(() => serve(['--block-size', 'big'])).toThrow(/a positive integer/);
  });

  it('reads --default-chat-template-kwargs, --enable-force-include-usage and --exclude-tools-when-tool-choice-none', () => {
    const options = serve([
      '--default-chat-template-kwargs',
      '{"enable_thinking": false}',
      '--enable-force-include-usage',
      '--exclude-tools-when-tool-choice-none',
    ]);
    expect(options.defaultChatTemplateKwargs).toEqual({ enable_thinking: false });
    expect(options.forceIncludeUsage).toBe(true);
    expect(options.excludeToolsWhenToolChoiceNone).toBe(true);
    expect(serve([]).defaultChatTemplateKwargs).toEqual({});
    expect(serve(['--enable-tokenizer-info-endpoint']).enableTokenizerInfoEndpoint).toBe(true);
    expect(serve([]).enableTokenizerInfoEndpoint).toBe(false);
    expect(() => serve(['--default-chat-template-kwargs', '[1]'])).toThrow(/JSON object/);
    expect(() => serve(['--default-chat-template-kwargs', '{'])).toThrow(/not JSON/);
    expect(() => serve(['--default-chat-template-kwargs', '{"chat_template": "x"}'])).toThrow(
      /--chat-template FILE/,
    );
    expect(serve(['--hf-overrides', '{"max_position_embeddings": 8192}']).hfOverrides).toEqual({
      max_position_embeddings: 8192,
    });
    expect(() => serve(['--hf-overrides', '"x"'])).toThrow(/--hf-overrides: expected a JSON object/);
    // vLLM's human-readable token counts: k/m/g decimal, K/M/G binary (whole numbers only).
    expect(serve(['--max-model-len', '32K', '--max-num-batched-tokens', '25.6k'])).toMatchObject({
      maxModelLen: 32_768,
      maxNumBatchedTokens: 25_600,
    });
    expect(serve(['--max-model-len', '1m']).maxModelLen).toBe(1_000_000);
    expect(serve(['--max-model-len', '1T']).maxModelLen).toBe(2 ** 40);
    // vLLM's -1 and auto: the longest context the pool holds.
    for (const auto of ['-1', 'auto', 'AUTO'])
      expect(serve(['--max-model-len', auto]).maxModelLen).toBe('auto');
    expect(() => serve(['--max-model-len', '1.5K'])).toThrow(/did you mean 1\.5k/);
    expect(() => serve(['--max-model-len', '3x'])).toThrow(/expected an integer/);
    // vLLM's --structured-outputs-config: the backend and fallback switches logged as ignored.
    const so = serve([
      '--structured-outputs-config',
      '{"backend": "xgrammar", "disable_fallback": true, "reasoning_parser": "deepseek_r1", "disable_any_whitespace": false}',
    ]);
    expect(so.reasoningParser).toBe('deepseek_r1');
    expect(so.notices).toHaveLength(2);
    expect(serve(['--structured-outputs-config.backend', 'guidance']).notices[0]).toContain(
      'own grammar engine',
    );
    expect(() => serve(['--structured-outputs-config', '{"disable_any_whitespace": true}'])).toThrow(
      /set it per request/,
    );
    expect(() => serve(['--structured-outputs-config', '{"enable_in_reasoning": true}'])).toThrow(
      /enable_in_reasoning true is not supported/,
    );
    expect(() => serve(['--structured-outputs-config', '{"backend": "magic"}'])).toThrow(
      /backend must be one of/,
    );
    expect(() => serve(['--structured-outputs-config', '{"extra": 1}'])).toThrow(/unknown key extra/);
    expect(
      serve([
        '--reasoning-parser',
        'deepseek_r1',
        '--structured-outputs-config',
        '{"reasoning_parser": "deepseek_r1"}',
      ]).reasoningParser,
    ).toBe('deepseek_r1');
    expect(() => serve(['--structured-outputs-config', '{"reasoning_parser": "qwen9"}'])).toThrow(
      /reasoning formats/,
    );
  });
});
