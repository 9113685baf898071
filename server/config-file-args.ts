import { readFileSync } from 'node:fs';
import { CliError } from './cli-error.js';

/** A config file is a page of flags: anything this large is not one. */
const MAX_CONFIG_FILE_BYTES = 1 << 20;

type YamlValue = string | boolean | null | string[];

/** PyYAML's (YAML 1.1) booleans, which vLLM's yaml.safe_load reads. */
const YAML_BOOLEANS: Record<string, boolean> = {
  true: true,
  True: true,
  TRUE: true,
  yes: true,
  Yes: true,
  YES: true,
  on: true,
  On: true,
  ON: true,
  false: false,
  False: false,
  FALSE: false,
  no: false,
  No: false,
  NO: false,
  off: false,
  Off: false,
  OFF: false,
};

/** The line without its comment (a `#` that starts the line or follows a space, outside quotes). */
function withoutComment(line: string): string {
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === quote) quote = null;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]))) return line.slice(0, i);
  }
  return line;
}

/** One scalar: quoted (YAML's escapes for the quotes and backslash), or plain. */
function scalar(text: string, where: string): string | boolean | null {
  const t = text.trim();
  if (t.startsWith('"')) {
    if (!t.endsWith('"') || t.length < 2) throw new CliError(`${where}: unterminated "string"`);
    try {
      return JSON.parse(t) as string;
    } catch {
      throw new CliError(`${where}: a "string" Loom cannot read (${t}); write it in JSON's escapes`);
    }
  }
  if (t.startsWith("'")) {
    if (!t.endsWith("'") || t.length < 2) throw new CliError(`${where}: unterminated 'string'`);
    return t.slice(1, -1).replaceAll("''", "'");
  }
  if (t === '' || t === '~' || t === 'null' || t === 'Null' || t === 'NULL') return null;
  if (t in YAML_BOOLEANS) return YAML_BOOLEANS[t];
  if (/^[&*!|>{@`%]/.test(t))
    throw new CliError(
      `${where}: ${t[0] === '{' ? 'a mapping' : `YAML's "${t[0]}"`} is not read in a config file; give the value as a quoted string (a JSON object as '{"a": 1}')`,
    );
  return t;
}

/** `[a, b, "c"]`: scalars split on the commas outside quotes. */
function flowList(text: string, where: string): string[] {
  const inner = text.trim().slice(1, -1);
  if (inner.trim() === '') return [];
  const items: string[] = [];
  let quote: string | null = null;
  let start = 0;
  for (let i = 0; i <= inner.length; i++) {
    const c = inner[i];
    if (quote) {
      if (c === quote) quote = null;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '[' || c === '{') throw new CliError(`${where}: nested lists and mappings are not read`);
    else if (c === ',' || i === inner.length) {
      items.push(listItem(inner.slice(start, i), where));
      start = i + 1;
    }
  }
  return items;
}

function listItem(text: string, where: string): string {
  const value = scalar(text, where);
  if (value === null) throw new CliError(`${where}: an empty list item`);
  return String(value);
}

/**
 * The subset of YAML a vLLM config file uses: a top-level mapping of flag names to scalars, flow
 * lists (`[a, b]`) or block lists (`- a` lines below the key). Everything else (nesting, anchors,
 * multi-line strings) is refused naming its line, never guessed at.
 */
export function parseConfigYaml(text: string, file: string): Map<string, YamlValue> {
  const entries = new Map<string, YamlValue>();
  let listKey: string | null = null;
  const lines = text.split(/\r?\n/);
  for (let n = 0; n < lines.length; n++) {
    const where = `${file}:${n + 1}`;
    const line = withoutComment(lines[n]).replace(/\s+$/, '');
    if (line.trim() === '' || line.trim() === '---') continue;
    const item = /^\s+-\s+(.*)$/.exec(line) ?? /^-\s+(.*)$/.exec(line);
    if (item) {
      if (listKey === null) throw new CliError(`${where}: a list item that belongs to no key`);
      (entries.get(listKey) as string[]).push(listItem(item[1], where));
      continue;
    }
    if (/^\s/.test(line)) throw new CliError(`${where}: nested mappings are not read in a config file`);
    const pair = /^([A-Za-z0-9][A-Za-z0-9_-]*)\s*:(?:\s+(.*))?$/.exec(line);
    if (!pair) throw new CliError(`${where}: expected "flag-name: value"`);
    const [, key, rest = ''] = pair;
    if (entries.has(key)) throw new CliError(`${where}: ${key} is given twice`);
    listKey = null;
    if (rest.trim() === '') {
      // A key alone: a block list follows, or it is null.
      entries.set(key, []);
      listKey = key;
    } else if (rest.trim().startsWith('[')) {
      if (!rest.trim().endsWith(']')) throw new CliError(`${where}: a [list] must close on its line`);
      entries.set(key, flowList(rest, where));
    } else entries.set(key, scalar(rest, where));
  }
  // A key with nothing under it was null, not an empty list.
  for (const [key, value] of entries) if (Array.isArray(value) && value.length === 0) entries.set(key, null);
  return entries;
}

/**
 * Flags from a config file, as vLLM turns its YAML into arguments: each key `k` is `--k`; `true`
 * gives a switch, a list gives its items after one flag, any other value its text. `false` turns a
 * switch off: `--no-k` where Loom has that spelling, else nothing (a switch is off unless given).
 * A null value is a mistake, refused.
 */
export function configFileArgs(
  entries: ReadonlyMap<string, YamlValue>,
  file: string,
  isSwitch: (flag: string) => boolean,
): string[] {
  const args: string[] = [];
  for (const [key, value] of entries) {
    const flag = `--${key}`;
    if (flag === '--config') throw new CliError(`${file}: a config file cannot name another (config)`);
    if (value === null) throw new CliError(`${file}: ${key} has no value`);
    if (value === true) args.push(flag);
    else if (value === false) {
      if (isSwitch(`--no-${key}`)) args.push(`--no-${key}`);
      else if (!isSwitch(flag))
        throw new CliError(`${file}: ${key}: false, but ${flag} is not a switch Loom knows`);
    } else if (Array.isArray(value)) args.push(flag, ...value);
    else args.push(flag, value);
  }
  return args;
}

/**
 * argv with vLLM's `--config FILE` replaced by the file's flags: after a leading model argument
 * (`loom MODEL --config f.yaml`), before the other flags, so that a flag also on the command line
 * takes the command line's value (the last one given wins), as vLLM's do; a flag that gathers
 * values (--lora-modules) gathers the file's and the command line's.
 */
export function expandConfigFile(
  argv: readonly string[],
  isSwitch: (flag: string) => boolean,
  readText: (path: string) => string = (path) => {
    const bytes = readFileSync(path);
    if (bytes.length > MAX_CONFIG_FILE_BYTES)
      throw new CliError(`--config: ${path} is larger than ${MAX_CONFIG_FILE_BYTES} bytes`);
    return bytes.toString('utf8');
  },
): string[] {
  const at = argv.findIndex((a) => a === '--config' || a.startsWith('--config='));
  if (at < 0) return [...argv];
  const given = argv[at];
  const path = given.includes('=') ? given.slice(given.indexOf('=') + 1) : argv[at + 1];
  if (path === undefined || path === '' || (!given.includes('=') && path.startsWith('--')))
    throw new CliError('--config needs a value');
  const rest = [...argv.slice(0, at), ...argv.slice(at + (given.includes('=') ? 1 : 2))];
  if (rest.some((a) => a === '--config' || a.startsWith('--config=')))
    throw new CliError('--config is given twice');
  let text: string;
  try {
    text = readText(path);
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw new CliError(`--config: cannot read ${path} (${(error as Error).message})`);
  }
  const fromFile = configFileArgs(parseConfigYaml(text, path), path, isSwitch);
  const leadingModel = rest.length > 0 && !rest[0].startsWith('-') ? [rest[0]] : [];
  return [...leadingModel, ...fromFile, ...rest.slice(leadingModel.length)];
}
