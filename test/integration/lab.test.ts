/**
 * The lab against the real kernel: namespaces joined by a veth and by a bridge in the
 * host's namespace (whose FORWARD policy Docker sets to DROP), and a dispose that
 * leaves nothing behind — no namespace, no interface, no iptables rule.
 */
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { Lab } from '../../tools/lab/index.js';
import { netnsUnavailable } from './harness/netns.js';

const unavailable = netnsUnavailable();
const forwardRules = async (): Promise<string> => (await execa('iptables', ['-w', '-S', 'FORWARD'])).stdout;
const hostLinks = async (): Promise<string> => (await execa('ip', ['-o', 'link', 'show'])).stdout;
const namespaces = async (): Promise<string> => (await execa('ip', ['netns', 'list'])).stdout;

describe.skipIf(unavailable)(`lab${unavailable ? `: skipped: ${unavailable}` : ''}`, () => {
  let lab: Lab;
  afterEach(async () => {
    await lab?.dispose();
  });

  it('joins two namespaces with a veth, runs a process in one, and removes everything in reverse', async () => {
    lab = new Lab({ prefix: `lt${(process.pid % 1296).toString(36)}` });
    const a = await lab.netns('a');
    const b = await lab.netns('b');
    const [ia] = await lab.veth(a, '10.93.0.1/30', b, '10.93.0.2/30');
    expect(await a.ip('-br', 'addr', 'show', 'dev', ia)).toMatch(/10\.93\.0\.1\/30/);
    expect(await a.ping('10.93.0.2', 1)).toBe(true);
    const listener = b.spawn(process.execPath, ['-e', `require('node:net').createServer((s) => s.end('hi\\n')).listen(7000, '10.93.0.2', () => console.log('listening'))`]);
    lab.track(listener);
    await listener.waitFor(/listening/, 10_000);
    const got = await a.exec(process.execPath, ['-e', `require('node:net').connect(7000, '10.93.0.2').on('data', (d) => process.stdout.write(d))`]);
    expect(got.stdout).toBe('hi');
    await lab.dispose();
    expect(listener.alive).toBe(false);
    expect(await namespaces()).not.toContain(a.name);
    expect(await namespaces()).not.toContain(b.name);
  });

  it('a bridge in the host passes frames between its ports only while its own ACCEPT rule is there', async () => {
    lab = new Lab({ prefix: `lb${(process.pid % 1296).toString(36)}` });
    const a = await lab.netns('a');
    const b = await lab.netns('b');
    const br = await lab.bridge('br');
    expect(await forwardRules()).toMatch(new RegExp(`-A FORWARD -i ${br} -o ${br} -m comment --comment "?ctun-lab:${br}"? -j ACCEPT`));
    for (const [ns, addr] of [[a, '10.94.0.1/24'], [b, '10.94.0.2/24']] as const) {
      const [, hostEnd] = await lab.veth(ns, addr, undefined, '');
      await execa('ip', ['link', 'set', hostEnd, 'master', br]);
    }
    expect(await a.pingUntilReply('10.94.0.2', 5)).toBe(true);
    // Without the rule, Docker's DROP policy stops the bridged frames: the rule is what lets them through.
    const rule = ['FORWARD', '-i', br, '-o', br, '-j', 'ACCEPT', '-m', 'comment', '--comment', `ctun-lab:${br}`];
    await execa('iptables', ['-w', '-D', ...rule]);
    try {
      expect(await a.ping('10.94.0.2', 1)).toBe(false);
    } finally {
      await execa('iptables', ['-w', '-I', ...rule]);
    }
    await lab.dispose();
    expect(await forwardRules()).not.toContain(`ctun-lab:${br}`);
    expect(await hostLinks()).not.toMatch(new RegExp(`\\b${lab.prefix}`));
  });
});
