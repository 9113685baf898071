// Preloaded into a server under test (node --import): records every outbound TCP connect and
// every DNS query made from JavaScript, one JSON line each, into $LOOM_NETWORK_LOG. Unix-socket
// connects (tsx's own IPC) are local and not recorded.
import dns from 'node:dns';
import { appendFileSync } from 'node:fs';
import net from 'node:net';

const file = process.env.LOOM_NETWORK_LOG;
const record = (kind, detail) => appendFileSync(file, `${JSON.stringify({ kind, detail })}\n`);

const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
  const first = Array.isArray(args[0]) ? args[0][0] : args[0];
  const isPath = typeof first === 'string' || (typeof first === 'object' && first && 'path' in first);
  if (!isPath) record('connect', typeof first === 'object' ? { host: first.host, port: first.port } : args);
  return connect.apply(this, args);
};
for (const name of ['lookup', 'lookupService', 'resolve', 'resolve4', 'resolve6', 'resolveAny']) {
  const original = dns[name];
  dns[name] = function (...args) {
    record(`dns.${name}`, args[0]);
    return original.apply(this, args);
  };
  const promised = dns.promises[name];
  if (promised)
    dns.promises[name] = function (...args) {
      record(`dns.promises.${name}`, args[0]);
      return promised.apply(this, args);
    };
}
