import { afterEach, describe, expect, it } from 'vitest';
import { Lab } from './lab.js';
import { startProcess, type Proc } from './process.js';

// Real child processes: tiny Node scripts, so what is tested is how the lab reads real pipes and signals.
const node = (script: string, options: Parameters<typeof startProcess>[2] = {}): Proc => lab.track(startProcess(process.execPath, ['-e', script], { label: 'script', ...options }));
let lab = new Lab();

afterEach(async () => {
  await lab.dispose();
  lab = new Lab();
});

describe('Proc', () => {
  it('waits for a line on either stream and returns the match', async () => {
    const p = node(`console.log('starting'); setTimeout(() => console.error('ready port=4242'), 50); setInterval(() => {}, 1000);`);
    expect(await p.waitFor(/ready port=\d+/, 5000)).toBe('ready port=4242');
    expect(p.stdout()).toBe('starting\n');
    expect(p.stderr()).toBe('ready port=4242\n');
    expect(p.output).toBe('starting\nready port=4242\n');
  });

  it('searches one stream when asked, and from a mark', async () => {
    const p = node(`console.error('ready'); setTimeout(() => console.log('ready'), 100); setInterval(() => {}, 1000);`);
    await p.waitFor(/ready/, 5000, { stream: 'stdout' });
    expect(p.stderr()).toBe('ready\n');
    const mark = p.output.length;
    await expect(p.waitFor(/ready/, 300, mark)).rejects.toMatchObject({ code: 'PROCESS_WAIT_TIMEOUT' });
  });

  it('fails at once, quoting the output, when the process ends before printing the line', async () => {
    const p = node(`console.log('bad config'); process.exit(3)`);
    const e = await p.waitFor(/ready/, 10_000).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'PROCESS_EXITED', message: expect.stringContaining('script exited (code 3) before printing /ready/; output was:\nbad config') });
  });

  it('says what it waited for and how long when the line never comes', async () => {
    const p = node(`console.log('still starting'); setInterval(() => {}, 1000);`);
    await p.waitFor(/still starting/);
    await expect(p.waitFor(/ready/, 200)).rejects.toMatchObject({
      code: 'PROCESS_WAIT_TIMEOUT',
      message: expect.stringContaining('waited 200 ms for /ready/ from script; output was:\nstill starting'),
    });
  });

  it('reports exit code and signal', async () => {
    expect(await node(`process.exit(5)`).waitExit(5000)).toEqual({ code: 5, signal: null });
    const p = node(`setInterval(() => {}, 1000)`);
    p.kill('SIGKILL');
    expect(await p.waitExit(5000)).toEqual({ code: null, signal: 'SIGKILL' });
    await expect(node(`setInterval(() => {}, 1000)`).waitExit(100)).rejects.toMatchObject({ code: 'PROCESS_STILL_RUNNING' });
  });

  it('stops with SIGTERM, and with SIGKILL when SIGTERM is ignored', async () => {
    const polite = node(`process.on('SIGTERM', () => { console.log('bye'); process.exit(0) }); console.log('up'); setInterval(() => {}, 1000);`);
    await polite.waitFor(/up/);
    expect(await polite.stop()).toBe(0);
    expect(polite.output).toContain('bye');
    const stubborn = node(`process.on('SIGTERM', () => console.log('ignored')); console.log('up'); setInterval(() => {}, 1000);`);
    await stubborn.waitFor(/up/);
    await stubborn.stop(200, 5000);
    expect(stubborn.alive).toBe(false);
    expect(stubborn.output).toContain('ignored');
    expect(stubborn.child.signalCode).toBe('SIGKILL');
  });

  it('passes only PATH and HOME with isolateEnv', async () => {
    process.env['CTUN_LAB_LEAK'] = 'leaked';
    try {
      const p = node(`console.log(JSON.stringify(Object.keys(process.env).sort()))`, { isolateEnv: true, env: { EXTRA: '1' } });
      await p.waitExit(5000);
      expect(JSON.parse(p.stdout())).toEqual(['EXTRA', 'HOME', 'PATH'].filter((k) => k !== 'HOME' || process.env['HOME'] !== undefined));
    } finally {
      delete process.env['CTUN_LAB_LEAK'];
    }
  });

  it('a program that does not exist ends with its reason', async () => {
    const p = lab.track(startProcess('/nonexistent/program', []));
    await expect(p.waitFor(/ready/, 5000)).rejects.toMatchObject({ code: 'PROCESS_EXITED', message: expect.stringContaining('ENOENT') });
  });
});

describe('Lab', () => {
  it('stops every process it started on dispose', async () => {
    const own = new Lab();
    const a = own.spawn(undefined, process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
    const b = own.spawn(undefined, process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
    const order: string[] = [];
    own.onCleanup(async () => void order.push('first made'));
    own.onCleanup(async () => void order.push('last made'));
    await own.dispose();
    expect([a.alive, b.alive]).toEqual([false, false]);
    expect(order).toEqual(['last made', 'first made']);
  });

  it('goes on past a failing undo and names it', async () => {
    const own = new Lab();
    const done: string[] = [];
    own.onCleanup(async () => void done.push('earlier'));
    own.onCleanup(async () => {
      throw new Error('device busy');
    }, 'bridge b0');
    await expect(own.dispose()).rejects.toMatchObject({ code: 'LAB_CLEANUP_FAILED', message: expect.stringContaining('bridge b0: device busy') });
    expect(done).toEqual(['earlier']);
  });

  it('makes names that fit an interface name', () => {
    const own = new Lab({ prefix: 'ctab' });
    const names = [own.uniqueName('separate-server'), own.uniqueName('separate-server')];
    expect(names.every((n) => n.length <= 15)).toBe(true);
    expect(new Set(names).size).toBe(2);
  });
});
