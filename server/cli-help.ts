import { REASONING_PARSERS } from './reasoning.js';
import { TOOL_CALL_PARSERS } from './tool-parsers/parsers.js';
import { ignoredFlagList } from './vllm-flags.js';

/** `loom --help`: every flag cli-options.ts reads, with its default. */
export const CLI_HELP = `Usage: loom [--model DIR] [flags]

Serves one Llama-family model and its LoRA adapters over an OpenAI-compatible HTTP API.

  --model DIR                     Hugging Face model directory (default: the embedded synthetic model)
  --lora-modules NAME=DIR ...     PEFT adapter directories; repeatable; also {"name":..,"path":..,"base_model_name":..}
  --lora-dir DIR                  every sub-directory with an adapter_config.json is an adapter named after it;
                                  ones added later are registered on first request
  --lora-root DIR                 allow /v1/load_lora_adapter for adapter paths inside DIR (default: off)
  --max-loras N                   adapters resident in the page pool at once (default: as many of the
                                  largest registered adapter as fit beside one full-length sequence)
  --max-cpu-loras N               adapters kept in host RAM, least recently used dropped (default --max-loras)
  --max-lora-rank N               refuse adapters of a larger rank; nothing is padded to it (default 512)
  --lora-mode batched|padded|merged  Loom's batched adapters (default), or a benchmark baseline: padded
                                  (every adapter padded to the largest rank, PEFT-style) or merged (one
                                  adapter merged into the weights at a time, swapped as needed); onnx only
  --served-model-name NAME ...    the base model's id in the API (default: the directory's name); requests may
                                  use any of several names, answers give the first
  --host HOST                     address to listen on (default 127.0.0.1)
  --port N                        port to listen on (default 8000, or $PORT)
  --uds PATH                      serve on this Unix domain socket instead of --host and --port (vLLM's flag;
                                  a socket file left there is replaced; the socket is open to local users, 0666)
  --max-model-len N               context length (default: the model's max_position_embeddings); 32k, 32K as
                                  vLLM reads them; -1 or auto: the longest context the pool holds
  --max-num-seqs N                sequences in one batch (default 64)
  --max-num-batched-tokens N      token budget of one engine step (default 2048)
  --scheduling-policy fcfs|slora|priority
                                  slora: mixed steps (decodes, then prefill chunks in the rest of the
                                  budget), adapter clustering, early abort under --slo-ttft;
                                  fcfs: separate prefill and decode steps in arrival order;
                                  priority: vLLM's, mixed steps in order of the requests' priority
                                  (lower first), the highest preempted first (default slora)
  --max-loras-per-batch N         distinct adapters in one step under slora (default --max-loras)
  --max-queue N                   waiting sequences before new requests get 429 + Retry-After (default 1024)
  --slo-ttft SECONDS              time-to-first-token objective: under slora, a request whose first token
                                  cannot come in time is refused (503 + Retry-After) before it runs
  --max-step-time SECONDS         a step's token budget shrinks to what fits this time, as measured: every
                                  running stream waits for a step (and with --onnx-thread main, the whole
                                  server does) (default 4; 0: off)
  --engine auto|onnx|reference|webgpu   (default auto: webgpu on a hardware GPU adapter, else onnx)
  --onnx-thread worker|main       where the onnx engine runs its steps: on a worker thread, leaving the
                                  server's event loop free while a step runs (default worker), or on the
                                  server's thread (onnxruntime then holds it for the whole step)
  --cache-packed-weights          the onnx engine saves its session with the packed weights in
                                  $XDG_CACHE_HOME/loom (about twice the weights' size on disk) and maps it
                                  at the next start instead of packing again; f32/f16/bf16 (default off)
  --dtype auto|float16|half|bfloat16|float32|float   linear-weight storage (f16, bf16, f32 also
                                  accepted); auto: bf16 for a BF16 checkpoint on webgpu, else f16 where the
                                  WebGPU adapter has shader-f16, else f32 (f32 on onnx);
                                  webgpu, onnx: f32, f16, bf16; reference: f32 (default auto)
  --quantization, -q int8|int4    weight-only quantization of the base model's linear weights, made at load
                                  (block-wise scales; onnx and webgpu; LoRA weights stay f32) (default none)
  --pool-size SIZE                page pool: bytes (2GiB) or a fraction of host memory (0.3) (default 0.25)
  --kv-cache-memory-bytes N       vLLM's KV cache size in bytes (8G, 8g as vLLM reads them): Loom's unified pool,
                                  which holds the resident adapters too; --gpu-memory-utilization is then ignored
  --gpu-memory-utilization F      vLLM's fraction (0 < F <= 1) of the engine's memory: on a GPU whose size
                                  nvidia-smi or amdgpu's sysfs reports, F of it less the weights is the
                                  pool; else F of host memory (onnx, reference, a software WebGPU
                                  adapter), refused on a hardware WebGPU adapter: use --pool-size BYTES
  --chat-template FILE|TEMPLATE   a Jinja chat template replacing the tokenizer's: a file, or (as vLLM reads
                                  it) the template itself when no file opens and it has {, } or a newline
  --tokenizer DIR                 the tokenizer's files (tokenizer.json, tokenizer_config.json) from DIR, not the
                                  model's directory (vLLM's flag; a local folder: Loom downloads nothing)
  --hf-config-path DIR            config.json from DIR, not the model's directory (vLLM's flag; generation_config.json
                                  stays the model's)
  --generation-config auto|vllm|DIR  sampling defaults for fields a request leaves out (temperature, top_p,
                                  top_k, min_p, repetition_penalty; max_new_tokens caps max_tokens), as vLLM:
                                  auto: the model's generation_config.json; vllm: none; DIR: DIR's (default auto)
  --override-generation-config JSON  sampling defaults over those, e.g. '{"temperature": 0.5}'
  --seed N                        seeds the per-request seeds of requests that give none (default: random)
  --max-n N                       most choices (n) one request may ask for (default 16)
  --max-logprobs N                most top tokens a row may list (logprobs, top_logprobs, prompt_logprobs;
                                  beam search's 2·n), vLLM's flag (default 20; -1: no cap)
  --logprobs-mode MODE            what a sampled token's logprob reports, vLLM's values: raw_logprobs
                                  (default), raw_logits, processed_logprobs, processed_logits (after
                                  penalties, logit_bias, allowed tokens, structured output, temperature,
                                  min_p, top_k, top_p: what the token was drawn from); the last three
                                  sample on the host (webgpu then reads every logit back)
  --max-stored-responses N        /v1/responses answers kept in memory, the oldest dropped first, for
                                  GET /v1/responses/{id} and previous_response_id (default 0: none kept,
                                  store: true is refused)
  --shutdown-timeout SECONDS      on SIGTERM/SIGINT, how long requests in flight may finish
                                  before they are ended (default 30)
  --stream-stall-timeout SECONDS  a stream whose client stops reading is paused (its sequences sit steps
                                  out); paused this long, it is aborted and its pages freed (default 60)
  --max-connections N             open connections past this are refused (default 1024)
  --timeout-keep-alive SECONDS    idle keep-alive connections are closed after this (default 5)
  --h11-max-incomplete-event-size BYTES  a request's line and headers may take this many bytes, more is a
                                  431 (vLLM's flag; default 16384, Node's: vLLM's 8 MiB would let each
                                  connection hold that much unparsed)
  --h11-max-header-count N        a request may carry this many headers, more is a 431 (vLLM's flag and
                                  default, 256)
  --ssl-keyfile FILE, --ssl-certfile FILE   serve HTTPS with this PEM key and certificate (vLLM's flags)
  --ssl-ca-certs FILE             the CA certificates client certificates are checked against
  --ssl-cert-reqs 0|1|2           client certificates: 0 not asked (default), 1 optional, 2 required
  --ssl-ciphers LIST              the TLS ciphers offered, in OpenSSL's list syntax (vLLM's flag)
  --enable-ssl-refresh            read the key, certificate and CA files again when they change (renewals
                                  reach new connections without a restart; vLLM's flag)
  --api-key KEY [KEY ...]         require "Authorization: Bearer KEY" (any of the keys, as vLLM's) on every endpoint
                                  but /health, /ping, /metrics and /version (also $LOOM_API_KEY or vLLM's
                                  $VLLM_API_KEY; default: no auth)
  --hide-adapter-paths            /v1/models shows adapter names, not their server paths (the default when
                                  no --api-key is set: an open server does not show where adapters live)
  --allowed-origins ORIGINS       enable CORS for these origins: a JSON list (vLLM's form) or a comma-separated
                                  list; "*" allows any (default: CORS off)
  --log-level LEVEL               fatal|error|warn|info|debug|trace|silent (also $LOG_LEVEL; default info)
  --disable-log-requests          no info line per finished generation (--enable-log-requests: the default)
  --disable-log-stats             no periodic stats line while busy
  --disable-uvicorn-access-log    no log line per HTTP request (vLLM's name for its access log)
  --disable-access-log-for-endpoints PATHS  no log line for requests to these paths, comma-separated,
                                  e.g. /health,/metrics (vLLM's flag)
  --enable-lora                   accepted for vLLM command lines: LoRA is always on
  --no-enable-prefix-caching      compute every prompt in full (default: automatic prefix caching, whole
                                  KV blocks keyed by their tokens, adapter and cache_salt; --enable-prefix-caching)
  --enable-prompt-tokens-details  usage.prompt_tokens_details gives {cached_tokens} (default: null, as vLLM)
  --return-tokens-as-token-ids    log-probability tokens are written token_id:<id> unless a request sets
                                  return_tokens_as_token_ids false (vLLM's flag)
  --trust-request-chat-template   render a chat request's own chat_template (vLLM's flag; without it such a
                                  request is refused, as vLLM refuses an untrusted template)
  --hf-overrides JSON             config.json's keys replaced by these before the model loads, e.g.
                                  '{"max_position_embeddings": 8192}' (vLLM's flag)
  --rope-scaling JSON, --rope-theta N  config.json's rope_scaling / rope_theta replaced (vLLM's older flags;
                                  they win over --hf-overrides's own)
  --default-chat-template-kwargs JSON  template variables every chat request gets unless its
                                  chat_template_kwargs (or reasoning_effort, documents) set them,
                                  e.g. '{"enable_thinking": false}' (vLLM's flag)
  --enable-force-include-usage    every stream ends with a usage chunk, as if stream_options.include_usage
                                  were true (vLLM's flag)
  --enable-tokenizer-info-endpoint  serve GET /tokenizer_info: the tokenizer's configuration and chat
                                  template, for clients that build the same tokenizer (vLLM's flag)
  --exclude-tools-when-tool-choice-none  with tool_choice "none" the tools are not written into the
                                  prompt (vLLM's flag; default: the template sees them, as vLLM's)
  --chat-template-content-format auto|string|openai  message content as the template gets it: a
                                  string (text parts joined by newlines), OpenAI's list of parts, or
                                  (auto, default) the list where the template loops over a message's
                                  content, as vLLM detects it
  --watermark-gamma G             the green share of the vocabulary when a /generate request sets
                                  watermark: true (LoRAX's flag, default 0.5)
  --watermark-delta D             what the green tokens' logits get added (LoRAX's flag, default 2.0)
  --response-role ROLE            a chat answer's role after a generation prompt (default assistant); with
                                  add_generation_prompt false it is the last message's, as vLLM's
  --enable-request-id-headers     every answer carries X-Request-Id: the request's own, else a fresh one
                                  (a completion's id is made from the request's X-Request-Id or request_id)
  --enable-auto-tool-choice       serve tool_choice "auto" (OpenAI's default with tools): the model writes text
                                  and its calls are read out of it with --tool-call-parser (default: refused)
  --tool-call-parser NAME         the model's tool-call format: ${TOOL_CALL_PARSERS.join(', ')}
  --structured-outputs-config JSON  vLLM's: {"backend": …} is accepted (Loom's grammar engine serves every
                                  backend), "reasoning_parser" is --reasoning-parser, switches Loom lacks
                                  are refused when on (also --structured-outputs-config.backend NAME)
  --reasoning-parser NAME         a reasoning model's format (${REASONING_PARSERS.join(', ')}): chat answers give its
                                  reasoning apart from the answer, as "reasoning" (default: none)
  --config FILE                   vLLM's YAML file of flags (\`max-model-len: 2048\`, \`enable-lora: true\`,
                                  lists for flags that take several values); the command line's own flags
                                  override it
  --version                       print Loom's version and exit
  --help                          this text

vLLM flags Loom accepts and ignores (one log line each): ${ignoredFlagList()}.
--tensor-parallel-size and --pipeline-parallel-size accept only 1.
`;
