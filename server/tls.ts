import { type Stats, unwatchFile, watchFile } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Server as HttpsServer } from 'node:https';
import { createSecureContext } from 'node:tls';
import type { AppOptions } from './app.js';
import { CliError, type TlsOptions } from './cli-options.js';

async function readPem(file: string, flag: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    throw new CliError(`${flag}: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/**
 * vLLM's --ssl-* flags as the HTTPS server's options: the files read and the key checked against
 * the certificate at start-up (a wrong pair is one CLI line, not a failed handshake per client);
 * --ssl-cert-reqs 1 asks clients for a certificate, 2 refuses them without one that --ssl-ca-certs
 * signed.
 */
export async function readTlsFiles(tls: TlsOptions): Promise<NonNullable<AppOptions['https']>> {
  if (tls.keyFile === null || tls.certFile === null)
    throw new CliError('HTTPS needs both --ssl-keyfile and --ssl-certfile');
  const key = await readPem(tls.keyFile, '--ssl-keyfile');
  const cert = await readPem(tls.certFile, '--ssl-certfile');
  const ca = tls.caFile === null ? undefined : await readPem(tls.caFile, '--ssl-ca-certs');
  try {
    createSecureContext({ key, cert, ca });
  } catch (error) {
    throw new CliError(`--ssl-keyfile/--ssl-certfile: ${(error as Error).message}`);
  }
  if (tls.ciphers !== null) {
    try {
      createSecureContext({ ciphers: tls.ciphers });
    } catch (error) {
      throw new CliError(`--ssl-ciphers "${tls.ciphers}": ${(error as Error).message}`);
    }
  }
  return {
    key,
    cert,
    ...(ca ? { ca } : {}),
    ...(tls.ciphers !== null ? { ciphers: tls.ciphers } : {}),
    requestCert: tls.certReqs !== 0,
    rejectUnauthorized: tls.certReqs === 2,
  };
}

/** How often --enable-ssl-refresh looks at the files (by stat, which sees a file replaced too). */
const REFRESH_POLL_MS = 1000;

/**
 * vLLM's --enable-ssl-refresh: when the key, certificate or CA file changes (a renewal writing or
 * replacing it), the files are read again and new connections get them; connections already open
 * keep theirs. A half-written or mismatched pair is reported and the old one kept, and the next
 * change is tried again. Returns the function that stops watching.
 */
export function refreshTlsOnChange(
  server: Pick<HttpsServer, 'setSecureContext'>,
  tls: TlsOptions,
  log: { info(fields: object, message: string): void; warn(fields: object, message: string): void },
  pollMs = REFRESH_POLL_MS,
): () => void {
  const files = [tls.keyFile, tls.certFile, tls.caFile].filter((f): f is string => f !== null);
  let reloading = Promise.resolve();
  const reload = () => {
    reloading = reloading.then(async () => {
      try {
        const options = await readTlsFiles(tls);
        server.setSecureContext(options);
        log.info({ files }, 'TLS files changed: new connections use them');
      } catch (error) {
        log.warn(
          { files, error: (error as Error).message },
          'TLS files changed but cannot be used: kept the old ones',
        );
      }
    });
  };
  const onChange = (now: Stats, before: Stats) => {
    if (now.mtimeMs !== before.mtimeMs || now.ino !== before.ino || now.size !== before.size) reload();
  };
  for (const file of files) watchFile(file, { interval: pollMs, persistent: false }, onChange);
  return () => {
    for (const file of files) unwatchFile(file, onChange);
  };
}
