/**
 * The addon's trimHeap gives the C heap's free pages back to the kernel: buffers a
 * tunnel end read and dropped stay resident after V8 frees them (glibc keeps them for
 * reuse) until the heap is trimmed. Measured in a child process of its own, with a
 * live buffer above the freed ones so glibc's own trimming at the top cannot.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { addonPath, loadAddon } from './native.js';

const run = promisify(execFile);

const CHILD = `
const addon = require(process.argv[1]);
const anonKiB = () => Number(/RssAnon:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1]);
let dropped = Array.from({ length: 256 }, () => Buffer.allocUnsafeSlow(60 * 1024).fill(1));
const pin = Buffer.allocUnsafeSlow(60 * 1024).fill(2);
dropped = undefined;
globalThis.gc();
// V8 frees array buffers' memory on a background thread after a GC: give it a moment
// (and a second GC), or some of the 15 MiB are still live when the heap is trimmed.
setTimeout(() => {
  globalThis.gc();
  const before = anonKiB();
  const released = addon.trimHeap();
  console.log(JSON.stringify({ before, after: anonKiB(), released, pin: pin[0] }));
}, 200);
`;

describe('trimHeap (addon)', () => {
  it('returns the pages of freed buffers to the kernel', async () => {
    loadAddon();
    const { stdout } = await run(process.execPath, ['--expose-gc', '--no-concurrent-array-buffer-sweeping', '-e', CHILD, addonPath()!], { timeout: 30_000 });
    const r = JSON.parse(stdout) as { before: number; after: number; released: boolean };
    expect(r.released).toBe(true);
    // 15 MiB were freed under a live buffer; most of it leaves the resident set.
    expect(r.before - r.after).toBeGreaterThan(10 * 1024);
  });
});
