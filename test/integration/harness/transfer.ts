/**
 * Programs for intact-transfer tests through a tunnel (run with `node -e` inside a
 * namespace): a TCP receiver and sender that hash what they move, each bounded by a
 * deadline, and the reader of the JSON line each prints last.
 */
import { NODE, type Netns, type Scope } from './netns.js';

/** Receives one connection, hashes it, prints {bytes, sha256}; prints {port} first. Listens on 0.0.0.0 (replace it with '::' for IPv6). */
export const RECEIVER = `
const net = require('node:net'); const crypto = require('node:crypto');
setTimeout(() => { console.log(JSON.stringify({ error: 'receiver timeout' })); process.exit(1); }, 90000).unref();
const srv = net.createServer((s) => {
  const h = crypto.createHash('sha256'); let bytes = 0;
  s.on('data', (d) => { bytes += d.length; h.update(d); });
  s.on('end', () => { console.log(JSON.stringify({ bytes, sha256: h.digest('hex') })); s.end(); process.exit(0); });
});
srv.listen(0, '0.0.0.0', () => console.log(JSON.stringify({ port: srv.address().port })));
`;

/** Sends `total` bytes of random data (fresh each run) to `host port`, hashing as it goes; prints {bytes, sha256}. */
export const SENDER = `
const net = require('node:net'); const crypto = require('node:crypto');
const [host, port, total] = process.argv.slice(1);
setTimeout(() => { console.log(JSON.stringify({ error: 'sender timeout' })); process.exit(1); }, 90000).unref();
const h = crypto.createHash('sha256'); let sent = 0;
const s = net.connect(Number(port), host, () => {
  const pump = () => {
    while (sent < Number(total)) {
      const chunk = crypto.randomBytes(Math.min(65536, Number(total) - sent));
      sent += chunk.length; h.update(chunk);
      if (!s.write(chunk)) return s.once('drain', pump);
    }
    s.end();
  };
  pump();
});
s.on('error', (e) => { console.log(JSON.stringify({ error: e.message })); process.exit(1); });
s.on('close', () => { console.log(JSON.stringify({ bytes: sent, sha256: h.digest('hex') })); process.exit(0); });
`;

/** Outer IP fragmentation and reassembly counters of a namespace's kernel. */

/** The last line of a program's output, as JSON. */
export const lastJson = (out: string): Record<string, unknown> => JSON.parse(out.trim().split('\n').pop() ?? '{}');

/**
 * `bytes` of fresh random data over one TCP connection from `from` to `target`, where
 * a receiver in `to` listens (on `listen`: '::' for IPv6); what each end hashed.
 */
export async function tcpTransfer(scope: Scope, from: Netns, to: Netns, target: string, bytes: number, listen: '0.0.0.0' | '::' = '0.0.0.0'): Promise<{ sent: Record<string, unknown>; received: Record<string, unknown> }> {
  const receiver = scope.track(to.spawn(NODE, ['-e', RECEIVER.replace("'0.0.0.0'", `'${listen}'`)], { label: 'receiver' }));
  const port = JSON.parse(await receiver.waitFor(/\{"port":\d+\}/, 10_000)).port as number;
  const sent = lastJson((await from.exec(NODE, ['-e', SENDER, target, String(port), String(bytes)], { timeout: 100_000 })).stdout);
  await receiver.waitFor(/"sha256"/, 20_000);
  return { sent, received: lastJson(receiver.output) };
}
