import { describe, expect, it } from 'vitest';
import { isSwitch, parseCliOptions } from '../../server/cli-options.js';
import { configFileArgs, expandConfigFile, parseConfigYaml } from '../../server/config-file-args.js';

/** `--config` read from an in-memory file. */
function expand(argv: string[], text: string): string[] {
  return expandConfigFile(argv, isSwitch, (path) => {
    if (path !== 'serve.yaml') throw new Error(`ENOENT: no such file ${path}`);
    return text;
  });
}

const SERVE_YAML = `# a vLLM deployment's config
model: /models/tinyllama
host: "127.0.0.1"
port: 8001
max-model-len: 2048   # the context
enable-lora: true
enable-prefix-caching: false
trust-remote-code: false
served-model-name: [tiny, 'tiny-alias']
lora-modules:
  - sql=/adapters/sql
  - chat=/adapters/chat
default-chat-template-kwargs: '{"enable_thinking": false}'
`;

describe("vLLM's --config FILE", () => {
  it('reads a deployment YAML as the flags it names, the command line overriding it', () => {
    const argv = expand(['--config', 'serve.yaml', '--port', '9000'], SERVE_YAML);
    expect(argv).toEqual([
      '--model',
      '/models/tinyllama',
      '--host',
      '127.0.0.1',
      '--port',
      '8001',
      '--max-model-len',
      '2048',
      '--enable-lora',
      '--no-enable-prefix-caching',
      '--served-model-name',
      'tiny',
      'tiny-alias',
      '--lora-modules',
      'sql=/adapters/sql',
      'chat=/adapters/chat',
      '--default-chat-template-kwargs',
      '{"enable_thinking": false}',
      '--port',
      '9000',
    ]);
    const command = parseCliOptions(argv);
    if (command.kind !== 'serve') throw new Error(command.kind);
    const options = command.options;
    expect(options).toMatchObject({
      model: '/models/tinyllama',
      host: '127.0.0.1',
      port: 9000,
      maxModelLen: 2048,
      enablePrefixCaching: false,
      servedModelName: 'tiny',
      defaultChatTemplateKwargs: { enable_thinking: false },
    });
    expect(options.loraModules.map((m) => m.name)).toEqual(['sql', 'chat']);
  });

  it('keeps a leading model argument first, and takes --config=FILE', () => {
    expect(expand(['/models/m', '--config=serve.yaml'], 'port: 1\n')).toEqual(['/models/m', '--port', '1']);
  });

  it("refuses what it does not read, naming the file's line", () => {
    const refused = (text: string) => () => expand(['--config', 'serve.yaml'], text);
    expect(refused('a:\n  b: 1\n')).toThrow(/serve\.yaml:2: nested mappings/);
    expect(refused('port: &p 1\n')).toThrow(/serve\.yaml:1: YAML's "&"/);
    expect(refused('kw: {a: 1}\n')).toThrow(/a mapping is not read/);
    expect(refused('port: 1\nport: 2\n')).toThrow(/port is given twice/);
    expect(refused('- a\n')).toThrow(/belongs to no key/);
    expect(refused('bogus-switch: false\n')).toThrow(/--bogus-switch is not a switch Loom knows/);
    expect(refused('port:\n')).toThrow(/port has no value/);
    expect(refused('config: other.yaml\n')).toThrow(/cannot name another/);
    expect(refused('text: "unterminated\n')).toThrow(/unterminated/);
    expect(() => expand(['--config', 'missing.yaml'], '')).toThrow(/cannot read missing\.yaml/);
    expect(() => expand(['--config'], '')).toThrow(/needs a value/);
    expect(() => expand(['--config', 'serve.yaml', '--config', 'serve.yaml'], '')).toThrow(/given twice/);
    // An unknown flag in the file is the parser's "unknown flag", as on the command line.
    expect(() => parseCliOptions(expand(['--config', 'serve.yaml'], 'no-such-flag: 3\n'))).toThrow(
      /unknown flag --no-such-flag/,
    );
  });

  it("reads PyYAML's booleans, quotes and comments as vLLM's yaml.safe_load does", () => {
    const entries = parseConfigYaml(
      "a: yes\nb: Off\nc: 'it''s # not a comment'\nd: \"tab\\there\"\ne: 3 # comment\n",
      'f.yaml',
    );
    expect([...entries]).toEqual([
      ['a', true],
      ['b', false],
      ['c', "it's # not a comment"],
      ['d', 'tab\there'],
      ['e', '3'],
    ]);
    expect(configFileArgs(new Map([['enforce-eager', false]]), 'f.yaml', isSwitch)).toEqual([]);
  });
});
