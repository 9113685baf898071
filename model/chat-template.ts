import { join } from 'node:path';
import { Environment, Interpreter, Template } from '@huggingface/jinja';
import { MAX_CONFIG_BYTES, readBoundedText } from './config-file.js';
import { fileExists } from './file-exists.js';
import { ModelFormatError } from './model-format-error.js';

/** A text content part, as a template written for OpenAI's message shape reads content. */
export interface TextContentPart {
  type: 'text';
  text: string;
}

export interface ChatMessage {
  role: string;
  /** A string, or (CHAT_CONTENT_FORMATS' "openai") the text parts as OpenAI sends them. */
  content: string | TextContentPart[];
  /** OpenAI's participant name, for templates that write it (vLLM passes it on too). */
  name?: string;
  /** An assistant turn's tool calls, their arguments parsed (as HF's templates expect them). */
  tool_calls?: Array<{ id: string; type: 'function'; function: { name: string; arguments: unknown } }>;
  /** The call a `tool` message answers. */
  tool_call_id?: string;
  /**
   * An earlier assistant turn's reasoning (a reasoning model's), under vLLM's name and its earlier
   * one: templates that write it read either; others (DeepSeek R1's) leave it out on purpose.
   */
  reasoning?: string;
  reasoning_content?: string;
}

/** The chat template refused the messages on purpose (its `raise_exception`): the client's error. */
export class ChatTemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChatTemplateError';
  }
}

/**
 * The chat template itself failed while rendering (arithmetic on an undefined variable, a type
 * error): the model's files are at fault, not the request.
 */
export class ChatTemplateRenderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChatTemplateRenderError';
  }
}

/** Python's range(stop) / range(start, stop[, step]), as templates call it. */
function range(start: number, stop?: number, step = 1): number[] {
  const [from, to] = stop === undefined ? [0, start] : [start, stop];
  if (step === 0) throw new Error('range() step must not be zero');
  const out: number[] = [];
  for (let i = from; step > 0 ? i < to : i > to; i += step) out.push(i);
  return out;
}

/** The strftime directives chat templates use (Llama 3.1's "%d %b %Y" and the like). */
function strftimeNow(format: string): string {
  const now = new Date();
  const pad2 = (n: number) => String(n).padStart(2, '0');
  return format.replace(/%[YmdbBHM%]/g, (directive) => {
    switch (directive) {
      case '%Y':
        return String(now.getFullYear());
      case '%m':
        return pad2(now.getMonth() + 1);
      case '%d':
        return pad2(now.getDate());
      case '%b':
        return now.toLocaleString('en-US', { month: 'short' });
      case '%B':
        return now.toLocaleString('en-US', { month: 'long' });
      case '%H':
        return pad2(now.getHours());
      case '%M':
        return pad2(now.getMinutes());
      default:
        return '%';
    }
  });
}

/**
 * How message content reaches a template (vLLM's --chat-template-content-format): a string (text
 * parts joined by newlines), or "openai", the list of parts; "auto" picks by the template.
 */
export const CHAT_CONTENT_FORMATS = ['auto', 'string', 'openai'] as const;
export type ChatContentFormat = (typeof CHAT_CONTENT_FORMATS)[number];

type AstNode = Record<string, unknown> & { type?: string };

function nodesOf(root: unknown): AstNode[] {
  const out: AstNode[] = [];
  const walk = (node: unknown): void => {
    if (!node || typeof node !== 'object') return;
    if (Array.isArray(node)) {
      for (const n of node) walk(n);
      return;
    }
    const n = node as AstNode;
    if (typeof n.type === 'string') out.push(n);
    for (const value of Object.values(n)) walk(value);
  };
  walk(root);
  return out;
}

/**
 * Whether `node` reads the variable `name` (or, with `key`, its `key` item or attribute), through
 * filters, tests, slices and a loop's `if` as vLLM's detection looks through them.
 */
function readsVariable(node: AstNode | undefined, name: string, key?: string): boolean {
  if (!node) return false;
  switch (node.type) {
    case 'FilterExpression':
    case 'TestExpression':
      return readsVariable(node.operand as AstNode, name, key);
    case 'SelectExpression':
      return readsVariable(node.lhs as AstNode, name, key);
    case 'MemberExpression': {
      const property = node.property as AstNode;
      if (property.type === 'SliceExpression') return readsVariable(node.object as AstNode, name, key);
      if (key === undefined) return false;
      const object = node.object as AstNode;
      const named =
        (node.computed && property.type === 'StringLiteral' && property.value === key) ||
        (!node.computed && property.type === 'Identifier' && property.value === key);
      return named && object.type === 'Identifier' && object.value === name;
    }
    case 'Identifier':
      return key === undefined && node.value === name;
    default:
      return false;
  }
}

/**
 * vLLM's "auto" detection: "openai" where the template loops over a message's content (a loop
 * over `messages`, or a variable set from it, whose item's `content` is itself looped over),
 * else "string".
 */
function detectContentFormat(parsed: unknown): 'string' | 'openai' {
  const nodes = nodesOf(parsed);
  const messageLists = new Set(['messages']);
  for (let grew = true; grew; ) {
    grew = false;
    for (const n of nodes) {
      if (n.type !== 'Set') continue;
      const target = n.assignee as AstNode;
      if (target?.type !== 'Identifier' || messageLists.has(target.value as string)) continue;
      if ([...messageLists].some((name) => readsVariable(n.value as AstNode, name))) {
        messageLists.add(target.value as string);
        grew = true;
      }
    }
  }
  const loops = nodes.filter((n) => n.type === 'For' && (n.loopvar as AstNode)?.type === 'Identifier');
  const messageItems = loops
    .filter((n) => [...messageLists].some((name) => readsVariable(n.iterable as AstNode, name)))
    .map((n) => (n.loopvar as AstNode).value as string);
  return loops.some((n) => messageItems.some((item) => readsVariable(n.iterable as AstNode, item, 'content')))
    ? 'openai'
    : 'string';
}

/**
 * A parsed chat template. It renders with the globals HF's sandbox gives templates, but with its
 * own `raise_exception`, so that a template refusing the messages (a client error) is told apart
 * from a template that fails by itself (the server's problem).
 */
export class ChatTemplate {
  private readonly template: Template;
  private names: Set<string> | null = null;
  private detectedContentFormat: 'string' | 'openai' | null = null;
  /**
   * The model's "tool_use" template, when its chat_template is a list that names one: HF's
   * apply_chat_template renders with it whenever tools are given (forTools).
   */
  toolUse: ChatTemplate | null = null;

  /** Throws a ModelFormatError naming `file` if the source does not parse. */
  constructor(
    readonly source: string,
    readonly file: string,
  ) {
    try {
      this.template = new Template(source);
    } catch (err) {
      throw new ModelFormatError(file, `chat template does not parse (${(err as Error).message})`);
    }
  }

  /** The template a rendering uses: the "tool_use" one when there are tools and the model has one. */
  forTools(hasTools: boolean): ChatTemplate {
    return hasTools && this.toolUse ? this.toolUse : this;
  }

  /**
   * Whether the template can read `name` at all: as a variable or attribute (`tools`,
   * `message.tool_calls`) or as a subscript (`message['tool_calls']`). A template that never
   * names a request's part cannot show it to the model.
   */
  reads(name: string): boolean {
    this.names ??= new Set(
      nodesOf(this.template.parsed)
        .filter((n) => (n.type === 'Identifier' || n.type === 'StringLiteral') && typeof n.value === 'string')
        .map((n) => n.value as string),
    );
    return this.names.has(name);
  }

  /** The content format vLLM's "auto" picks for this template (detectContentFormat). */
  get contentFormat(): 'string' | 'openai' {
    this.detectedContentFormat ??= detectContentFormat(this.template.parsed);
    return this.detectedContentFormat;
  }

  render(variables: Record<string, unknown>): string {
    const env = new Environment();
    const globals: Record<string, unknown> = {
      true: true,
      false: false,
      none: null,
      True: true,
      False: false,
      None: null,
      range,
      strftime_now: strftimeNow,
      raise_exception: (message: unknown) => {
        throw new ChatTemplateError(String(message));
      },
    };
    for (const [name, value] of Object.entries({ ...globals, ...variables })) env.set(name, value);
    try {
      return new Interpreter(env).run(this.template.parsed).value as string;
    } catch (err) {
      if (err instanceof ChatTemplateError) throw err;
      throw new ChatTemplateRenderError((err as Error).message);
    }
  }
}

/**
 * `chat_template` is a string, or a list of named templates of which "default" is the chat one
 * and "tool_use", where there is one, the one for requests with tools (as HF chooses them).
 */
function pickTemplate(file: string, raw: unknown): { source: string; toolUse: string | null } | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw === 'string') return { source: raw, toolUse: null };
  if (Array.isArray(raw)) {
    const named = (name: string) => raw.find((t) => t && typeof t === 'object' && t.name === name);
    const chosen = named('default');
    if (!chosen || typeof chosen.template !== 'string')
      throw new ModelFormatError(file, 'chat_template is a list without a "default" template');
    const toolUse = named('tool_use');
    if (toolUse && typeof toolUse.template !== 'string')
      throw new ModelFormatError(file, 'chat_template\'s "tool_use" template is not a string');
    return { source: chosen.template, toolUse: toolUse ? toolUse.template : null };
  }
  throw new ModelFormatError(file, 'chat_template is neither a string nor a list of {name, template}');
}

/** What `--chat-template` names in errors when it is the template itself. */
export const INLINE_CHAT_TEMPLATE = '--chat-template';

/**
 * The chat template, in priority order: --chat-template, tokenizer_config.json, chat_template.jinja.
 * As vLLM reads --chat-template, it is a file, or, when no file opens and the text has one of
 * Jinja's characters (`{`, `}`, a newline), the template itself, taken as written.
 */
export async function loadChatTemplate(
  dir: string,
  tokenizerConfig: Record<string, unknown>,
  chatTemplate?: string,
): Promise<ChatTemplate | null> {
  if (chatTemplate !== undefined) {
    const isTemplateText = /[{}\n]/.test(chatTemplate);
    let source: string | null;
    try {
      source = chatTemplate === '' ? null : await readBoundedText(chatTemplate, MAX_CONFIG_BYTES, true);
    } catch (error) {
      if (!isTemplateText) throw error;
      source = null;
    }
    if (source !== null) return new ChatTemplate(source, chatTemplate);
    if (isTemplateText) return new ChatTemplate(chatTemplate, INLINE_CHAT_TEMPLATE);
    throw new ModelFormatError(
      chatTemplate,
      "looks like a file path, but no such file opens (a --chat-template that is the template itself has Jinja's {, } or a newline in it)",
    );
  }
  const configFile = join(dir, 'tokenizer_config.json');
  const fromConfig = pickTemplate(configFile, tokenizerConfig.chat_template);
  if (fromConfig !== null) {
    const template = new ChatTemplate(fromConfig.source, configFile);
    if (fromConfig.toolUse !== null) template.toolUse = new ChatTemplate(fromConfig.toolUse, configFile);
    return template;
  }
  // Recent transformers versions save the template beside the config instead of inside it.
  const jinjaFile = join(dir, 'chat_template.jinja');
  if (!(await fileExists(jinjaFile))) return null;
  return new ChatTemplate((await readBoundedText(jinjaFile, MAX_CONFIG_BYTES, false))!, jinjaFile);
}
