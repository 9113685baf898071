import { generateKeyPairSync } from 'node:crypto';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { type Server as HttpsServer, request as httpsRequest, type RequestOptions } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../server/app.js';
import { CliError, parseCliOptions } from '../../server/cli-options.js';
import { readTlsFiles, refreshTlsOnChange } from '../../server/tls.js';
import { fakeStack } from './fake-stack.js';

/**
 * vLLM's --ssl-* flags: HTTPS with the given key and certificate, client certificates asked or
 * required. The fixture is a self-signed certificate for localhost and 127.0.0.1, made for these
 * tests only (its key protects nothing).
 */
const fixtures = fileURLToPath(new URL('./fixtures/tls/', import.meta.url));
const KEY = join(fixtures, 'localhost.key');
const CERT = join(fixtures, 'localhost.crt');
/** Another self-signed localhost pair: the "renewed" certificate of --enable-ssl-refresh. */
const RENEWED_KEY = join(fixtures, 'renewed.key');
const RENEWED_CERT = join(fixtures, 'renewed.crt');
const FILES = {
  keyFile: KEY,
  certFile: CERT,
  caFile: null,
  certReqs: 0 as const,
  ciphers: null,
  refresh: false,
};

/** The SHA-256 fingerprint of the certificate the server shows a new connection. */
function peerFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const fingerprint = socket.getPeerCertificate().fingerprint256;
      socket.end();
      resolve(fingerprint);
    });
    socket.on('error', reject);
  });
}

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

let close: (() => Promise<void>) | null = null;
afterEach(async () => {
  await close?.();
  close = null;
});

async function serve(certReqs: 0 | 1 | 2): Promise<number> {
  const https = await readTlsFiles({
    keyFile: KEY,
    certFile: CERT,
    caFile: certReqs ? CERT : null,
    certReqs,
    ciphers: null,
    refresh: false,
  });
  const app = buildApp({ stack: fakeStack(), https });
  await app.listen({ host: '127.0.0.1', port: 0 });
  close = () => app.close();
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('no TCP address');
  return address.port;
}

/** GET /health over HTTPS, trusting the fixture; the status, or the error that ended it. */
async function health(port: number, extra: RequestOptions = {}): Promise<number | string> {
  const ca = await readFile(CERT);
  return new Promise((resolve) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path: '/health', ca, ...extra }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', (error) => resolve((error as NodeJS.ErrnoException).code ?? error.message));
    req.end();
  });
}

describe('--ssl-keyfile, --ssl-certfile', () => {
  it('serves HTTPS, and a plain HTTP request gets no answer', async () => {
    const port = await serve(0);
    expect(await health(port)).toBe(200);
    const plain = await new Promise<number | string>((resolve) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/health' }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', (error) => resolve((error as NodeJS.ErrnoException).code ?? 'error'));
      req.end();
    });
    expect(plain).not.toBe(200);
  });

  it('requires a client certificate signed by --ssl-ca-certs with --ssl-cert-reqs 2', async () => {
    const port = await serve(2);
    expect(await health(port)).not.toBe(200);
    expect(await health(port, { key: await readFile(KEY), cert: await readFile(CERT) })).toBe(200);
  });

  it('refuses unreadable files and a key that is not the certificate’s, naming the flag', async () => {
    const missing = readTlsFiles({
      keyFile: '/nonexistent/key.pem',
      certFile: CERT,
      caFile: null,
      certReqs: 0,
      ciphers: null,
      refresh: false,
    });
    await expect(missing).rejects.toThrow(/--ssl-keyfile: cannot read \/nonexistent\/key.pem \(ENOENT\)/);
    const other = join(tmpdir(), `loom-other-${process.pid}.key`);
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    await writeFile(other, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const mismatch = readTlsFiles({
      keyFile: other,
      certFile: CERT,
      caFile: null,
      certReqs: 0,
      ciphers: null,
      refresh: false,
    });
    await expect(mismatch).rejects.toBeInstanceOf(CliError);
    await rm(other, { force: true });
  });

  it('offers only the --ssl-ciphers ciphers, and refuses a list that names none', async () => {
    const https = await readTlsFiles({ ...FILES, ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
    const app = buildApp({ stack: fakeStack(), https });
    await app.listen({ host: '127.0.0.1', port: 0 });
    close = () => app.close();
    const { port } = app.server.address() as AddressInfo;
    // TLS 1.2 is where the list applies (as Python's set_ciphers): another cipher finds no match.
    const tls12 = { maxVersion: 'TLSv1.2' as const };
    expect(await health(port, { ...tls12, ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' })).toBe(200);
    expect(await health(port, { ...tls12, ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384' })).not.toBe(200);
    await expect(readTlsFiles({ ...FILES, ciphers: 'NO-SUCH-CIPHER' })).rejects.toThrow(
      /--ssl-ciphers "NO-SUCH-CIPHER"/,
    );
  });

  it('--enable-ssl-refresh: a renewed certificate reaches new connections; a broken one keeps the old', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'loom-tls-refresh-'));
    const tls = { ...FILES, keyFile: join(dir, 'key.pem'), certFile: join(dir, 'cert.pem'), refresh: true };
    await copyFile(KEY, tls.keyFile);
    await copyFile(CERT, tls.certFile);
    const app = buildApp({ stack: fakeStack(), https: await readTlsFiles(tls) });
    const warnings: string[] = [];
    const log = { info: () => {}, warn: (fields: object) => warnings.push(JSON.stringify(fields)) };
    const stop = refreshTlsOnChange(app.server as HttpsServer, tls, log, 50);
    await app.listen({ host: '127.0.0.1', port: 0 });
    close = async () => {
      stop();
      await app.close();
      await rm(dir, { recursive: true, force: true });
    };
    const { port } = app.server.address() as AddressInfo;
    const original = await peerFingerprint(port);

    // A half-written pair (the new certificate, the old key): refused, the old pair still served.
    await copyFile(RENEWED_CERT, tls.certFile);
    await waitFor(() => warnings.length > 0);
    expect(warnings[0]).toMatch(/--ssl-keyfile\/--ssl-certfile/);
    expect(await peerFingerprint(port)).toBe(original);

    await copyFile(RENEWED_KEY, tls.keyFile);
    await waitFor(async () => (await peerFingerprint(port)) !== original);
    expect(await health(port, { ca: await readFile(RENEWED_CERT) })).toBe(200);
  });

  it('parses the flags, refusing half a pair and client checks without a CA', () => {
    const serveArgs = (args: string[]) => {
      const command = parseCliOptions(args);
      if (command.kind !== 'serve') throw new Error('not serve');
      return command.options;
    };
    expect(serveArgs([]).tls).toBeNull();
    expect(serveArgs(['--ssl-keyfile', 'k', '--ssl-certfile', 'c']).tls).toEqual({
      keyFile: 'k',
      certFile: 'c',
      caFile: null,
      certReqs: 0,
      ciphers: null,
      refresh: false,
    });
    expect(() => serveArgs(['--ssl-keyfile', 'k'])).toThrow(/both --ssl-keyfile and --ssl-certfile/);
    expect(() => serveArgs(['--ssl-keyfile', 'k', '--ssl-certfile', 'c', '--ssl-cert-reqs', '2'])).toThrow(
      /--ssl-ca-certs/,
    );
    expect(() => serveArgs(['--ssl-cert-reqs', '3'])).toThrow(/--ssl-cert-reqs/);
  });
});
