import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hasHugePagesTunable } from '../../server/huge-pages.js';

/**
 * The Dockerfile's invariants, read from the file itself: whoever edits it learns here, not in
 * production, that the container runs as root, swallows SIGTERM, calls home or ships every
 * platform's binaries.
 */
const ROOT = join(import.meta.dirname, '../..');

interface Instruction {
  keyword: string;
  args: string;
}

interface Stage {
  name: string;
  from: string;
  instructions: Instruction[];
}

/** Stages of a Dockerfile: line continuations joined, comments dropped, keywords upper-cased. */
function parseDockerfile(text: string): Stage[] {
  const logical = text
    .split('\n')
    .filter((line) => !line.trim().startsWith('#'))
    .join('\n')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean);
  const stages: Stage[] = [];
  for (const line of logical) {
    const [, keyword, args] = /^(\S+)\s*(.*)$/.exec(line)!;
    const upper = keyword.toUpperCase();
    if (upper === 'FROM') {
      const [from, , name] = args.split(/\s+/);
      stages.push({ name: name ?? `stage${stages.length}`, from, instructions: [] });
    } else if (stages.length > 0) {
      stages.at(-1)!.instructions.push({ keyword: upper, args });
    }
  }
  return stages;
}

/** A stage's instructions, its ancestors' (FROM another stage) first. */
function effective(stages: Stage[], stage: Stage): Instruction[] {
  const parent = stages.find((s) => s.name === stage.from);
  return [...(parent ? effective(stages, parent) : []), ...stage.instructions];
}

const stages = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
const finalStage = stages.at(-1)!;
const final = effective(stages, finalStage);
const all = (keyword: string) => final.filter((i) => i.keyword === keyword);
const last = (keyword: string) => all(keyword).at(-1);

describe('Dockerfile', () => {
  it('runs as a non-root user, with the embedded default model copied into the image', () => {
    const user = last('USER')?.args;
    expect(user).toBeDefined();
    expect(['root', '0']).not.toContain(user!.split(':')[0]);
    expect(all('COPY').some((i) => i.args === '. .')).toBe(true);
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').filter(Boolean);
    for (const pattern of ignored) expect('model/default/SHA256SUMS'.startsWith(pattern)).toBe(false);
  });

  it('checks /health and starts node itself in exec form, so SIGTERM reaches the server', () => {
    expect(last('HEALTHCHECK')?.args).toMatch(/\/health/);
    const cmd = JSON.parse(last('CMD')!.args) as string[];
    expect(cmd[0]).toBe('node');
    expect(cmd).toEqual(expect.arrayContaining(['--import', 'tsx', 'server/main.ts']));
    expect(last('ENTRYPOINT')).toBeUndefined();
    const stop = last('STOPSIGNAL')?.args;
    if (stop) expect(stop).toBe('SIGTERM');
  });

  it('starts with nothing to fetch: what CMD loads is a production dependency, and no npm or npx runs at start', () => {
    const cmd = JSON.parse(last('CMD')!.args) as string[];
    const healthcheck = last('HEALTHCHECK')!.args;
    for (const line of [cmd.join(' '), healthcheck]) expect(line).not.toMatch(/\bnpx?\b/);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    const imports = cmd.flatMap((arg, i) => (cmd[i - 1] === '--import' ? [arg] : []));
    expect(imports.length).toBeGreaterThan(0);
    for (const name of imports) expect(Object.keys(pkg.dependencies)).toContain(name);
  });

  it('switches telemetry off, asks for huge pages, and installs production dependencies only, without install scripts', () => {
    const env = all('ENV')
      .map((i) => i.args)
      .join(' ');
    expect(env).toMatch(/ORT_DISABLE_TELEMETRY=1\b/);
    const tunables = /GLIBC_TUNABLES=(\S+)/.exec(env);
    expect(hasHugePagesTunable({ GLIBC_TUNABLES: tunables?.[1] })).toBe(true);
    const deps = stages.flatMap((s) => s.instructions).filter((i) => i.args.includes('npm ci'));
    expect(deps.length).toBeGreaterThan(0);
    for (const i of deps) expect(i.args).toContain('--omit=dev');
    expect(readFileSync(join(ROOT, '.npmrc'), 'utf8')).toMatch(/^ignore-scripts=true$/m);
  });

  it('keeps only linux-x64 native binaries of every package that ships several platforms', () => {
    const runs = stages
      .flatMap((s) => s.instructions)
      .filter((i) => i.keyword === 'RUN')
      .map((i) => i.args)
      .join(' ');
    const removed = [...runs.matchAll(/node_modules\/\S+/g)].map((m) => m[0]);
    const platformDirs = [
      ...subdirs('node_modules/onnxruntime-node/bin/napi-v6', 2),
      ...subdirs('node_modules/webgpu/dist', 1),
    ];
    expect(platformDirs.length).toBeGreaterThan(4);
    for (const dir of platformDirs) {
      const isKept = /linux[-/]x64$/.test(dir);
      const isRemoved = removed.some((r) => dir === r || dir.startsWith(`${r}/`));
      expect({ dir, removed: isRemoved }).toEqual({ dir, removed: !isKept });
    }
  });

  it('builds lavapipe into a separate target, not into the default (last) one', () => {
    const webgpu = stages.find((s) => s.name === 'webgpu');
    expect(webgpu).toBeDefined();
    const installsLavapipe = (instructions: Instruction[]) =>
      instructions.some((i) => i.keyword === 'RUN' && /install-system\.sh|mesa-vulkan-drivers/.test(i.args));
    expect(installsLavapipe(effective(stages, webgpu!))).toBe(true);
    expect(installsLavapipe(final)).toBe(false);
    expect(finalStage.name).not.toBe('webgpu');
  });

  it('keeps node_modules, caches and git history out of the build context', () => {
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n');
    expect(ignored).toEqual(expect.arrayContaining(['node_modules', '.cache', '.git']));
  });
});

/** Directories `depth` levels under `dir` (relative to the repository root). */
function subdirs(dir: string, depth: number): string[] {
  const entries = readdirSync(join(ROOT, dir), { withFileTypes: true }).filter((e) => e.isDirectory());
  const here = entries.map((e) => `${dir}/${e.name}`);
  return depth === 1 ? here : here.flatMap((d) => subdirs(d, depth - 1));
}
