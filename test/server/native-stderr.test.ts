import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * Descriptor 2 taken over as server/main.ts does it, in a process of its own: what native code
 * writes there (simulated with write(2) on descriptor 2, the call Dawn's logging makes) comes out
 * as JSON lines on stdout, right up to process.exit, and the last words of a failing start still
 * reach the original stderr.
 */
const SCRIPT = `
import { writeSync } from 'node:fs';
import { captureStderr } from './server/native-stderr.ts';
const capture = await captureStderr((line) => process.stdout.write(JSON.stringify({ level: 40, source: 'stderr', msg: line }) + '\\n'));
if (!capture) throw new Error('not captured');
writeSync(2, 'Warning: a native warning\\n    at operator() (BackendVk.cpp:368)\\n\\n');
process.stderr.write('a JavaScript write to stderr\\n');
setTimeout(() => {
  writeSync(2, 'written just before exit');
  capture.writeOriginal('loom: the one line a failing start prints');
  process.exit(1);
}, 100);
`;

/**
 * Runs the script with stderr on a file (as a shell's `2>` gives it, reopened through /proc) or
 * on a socket (Node's own 'pipe', and a supervisor's log stream: copied through a helper).
 */
function run(
  stderrKind: 'file' | 'socket',
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'loom-stderr-test-'));
  const stderrFile = join(dir, 'stderr');
  const stderrFd = stderrKind === 'file' ? openSync(stderrFile, 'w') : null;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', SCRIPT], {
      cwd: join(import.meta.dirname, '../..'),
      stdio: ['ignore', 'pipe', stderrFd ?? 'pipe'],
    });
    if (stderrFd !== null) closeSync(stderrFd);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (data) => {
      stdout += data;
    });
    child.stderr?.on('data', (data) => {
      stderr += data;
    });
    child.on('close', (code) => {
      if (stderrFd !== null) stderr = readFileSync(stderrFile, 'utf8');
      rmSync(dir, { recursive: true, force: true });
      resolve({ code, stdout, stderr });
    });
  });
}

describe('captureStderr', () => {
  it.each(['file', 'socket'] as const)(
    'turns every line written to descriptor 2 into a JSON line, up to exit (stderr on a %s)',
    async (kind) => {
      const { code, stdout, stderr } = await run(kind);
      expect(code).toBe(1);
      const lines = stdout.split('\n').filter((line) => line !== '');
      const parsed = lines.map((line) => JSON.parse(line) as { source: string; msg: string });
      expect(parsed.map((p) => p.msg)).toEqual([
        'Warning: a native warning',
        '    at operator() (BackendVk.cpp:368)',
        'a JavaScript write to stderr',
        'written just before exit',
      ]);
      expect(stderr).toBe('loom: the one line a failing start prints\n');
    },
  );
});
