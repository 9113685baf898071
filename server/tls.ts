import { readFile } from 'node:fs/promises';
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
  return {
    key,
    cert,
    ...(ca ? { ca } : {}),
    requestCert: tls.certReqs !== 0,
    rejectUnauthorized: tls.certReqs === 2,
  };
}
