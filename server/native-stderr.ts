import { execFileSync, spawn } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Native libraries write to file descriptor 2 behind Node's back: Dawn (the `webgpu` package)
 * prints "Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced …" for lavapipe
 * and "Warning: Couldn't load Vulkan: …" with a C++ source location where no Vulkan loader exists,
 * and it has no flag or toggle that silences them. Those lines would break a log that is otherwise
 * one JSON object per line. Node cannot dup2, but POSIX open() takes the lowest free descriptor:
 * closing 2 and opening a FIFO at once puts the FIFO there, and its other end is read here, each
 * line becoming a structured log line.
 */
export interface StderrCapture {
  /** Writes a line where stderr went before the capture (for the last words of a failing start). */
  writeOriginal(text: string): void;
}

/** Keeps a socket received from the helper open (its descriptor is the copy of stderr). */
let originalSocket: Socket | null = null;

/**
 * A second descriptor for what stderr is now, so the capture keeps a way out. A file, pipe or
 * terminal is opened anew through /proc; a socket cannot be (a supervisor's log stream, Node's own
 * 'pipe' stdio), so a short-lived child gets it as its descriptor 3 and sends it back over IPC,
 * which copies the descriptor into this process (SCM_RIGHTS): Node has no dup().
 */
async function duplicateStderr(): Promise<number> {
  try {
    return openSync('/proc/self/fd/2', 'a');
  } catch {
    const child = spawn(process.execPath, ['-e', SEND_DESCRIPTOR_3], {
      stdio: ['ignore', 'ignore', 'ignore', 2, 'ipc'],
    });
    const socket = await new Promise<Socket | null>((resolve) => {
      child.once('message', (_message, handle) => resolve(handle instanceof Socket ? handle : null));
      child.once('exit', () => resolve(null));
      child.once('error', () => resolve(null));
    });
    const fd = (socket as unknown as { _handle?: { fd?: number } } | null)?._handle?.fd;
    if (!socket || typeof fd !== 'number' || fd < 0) throw new Error('stderr could not be duplicated');
    socket.pause();
    socket.unref();
    originalSocket = socket;
    return fd;
  }
}

const SEND_DESCRIPTOR_3 = `const s = new (require('node:net').Socket)({ fd: 3, readable: false, writable: true });
process.send('stderr', s, () => process.disconnect());`;

/**
 * Takes over descriptor 2 for the rest of the process; `relay` gets each non-empty line written
 * there. Call it early, while nothing else opens files (the swap must land on descriptor 2).
 * Resolves to null, changing nothing, where the swap is not possible (no mkfifo, no /proc):
 * native lines then reach stderr as before.
 */
export async function captureStderr(relay: (line: string) => void): Promise<StderrCapture | null> {
  let dir: string | null = null;
  let readFd = -1;
  let originalFd = -1;
  try {
    originalFd = await duplicateStderr();
    dir = mkdtempSync(join(tmpdir(), 'loom-stderr-'));
    const fifo = join(dir, 'stderr');
    execFileSync('mkfifo', ['-m', '600', fifo], { stdio: 'ignore' });
    readFd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    closeSync(2);
    const writeFd = openSync(fifo, constants.O_WRONLY);
    if (writeFd !== 2) {
      // Another thread opened a file into descriptor 2 between the two calls: the capture is off.
      closeSync(writeFd);
      throw new Error('descriptor 2 was taken while swapping stderr');
    }
  } catch {
    if (readFd >= 0) closeSync(readFd);
    if (originalFd >= 0 && !originalSocket) closeSync(originalFd);
    originalSocket?.destroy();
    originalSocket = null;
    return null;
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }

  let pending = '';
  const relayLines = (text: string) => {
    pending += text;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) if (line.trim() !== '') relay(line.trimEnd());
  };
  const reader = new Socket({ fd: readFd, readable: true, writable: false });
  reader.setEncoding('utf8');
  reader.on('data', relayLines);
  reader.on('error', () => {});
  reader.unref();
  // What was written just before exit has not been read yet: read it now, synchronously.
  process.once('exit', () => {
    const buffer = Buffer.alloc(64 * 1024);
    try {
      for (;;) {
        const n = readSync(readFd, buffer, 0, buffer.length, null);
        if (n <= 0) break;
        relayLines(buffer.toString('utf8', 0, n));
      }
    } catch {
      // EAGAIN: nothing left.
    }
    if (pending.trim() !== '') relay(pending.trimEnd());
  });
  return {
    writeOriginal(text: string) {
      writeSync(originalFd, text.endsWith('\n') ? text : `${text}\n`);
    },
  };
}
