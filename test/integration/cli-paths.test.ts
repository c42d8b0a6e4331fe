/**
 * Commands the README shows, run as a user runs them (the real CLI in a child
 * process, not the library): `ctun-run k8s render --out DIR --validate` and its
 * `--check`, and `ctun-build standin --out DIR`. No Docker and no root needed.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { appendFile, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..', '..');
const TSX = join(ROOT, 'node_modules/.bin/tsx');

function cli(tool: 'ctun-run' | 'ctun-build', args: string[]) {
  return execa(TSX, [join(ROOT, 'tools/cli', `${tool}.ts`), ...args], { cwd: ROOT, reject: false, env: { NO_COLOR: '1' }, timeout: 60_000 });
}

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ctun-cli-paths-'));
});
afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

const MANIFESTS = ['ctun-network-policy.yaml', 'ctun-separate-server.yaml', 'ctun-service.yaml', 'veos.23.1.ctun.yaml', 'veos.23.1.yaml'];

describe('ctun-run k8s render', () => {
  it('--out DIR --validate writes the five manifests, says so, exits 0; --check then finds them current', async () => {
    const out = join(work, 'k8s');
    const r = await cli('ctun-run', ['k8s', 'render', '--out', out, '--validate']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/INFO +k8s-valid versions=1\.34/);
    expect(r.stdout.split('\n').filter((l) => l.startsWith('wrote ')).sort()).toEqual(MANIFESTS.map((f) => `wrote ${join(out, f)}`));
    expect((await readdir(out)).sort()).toEqual(MANIFESTS);
    const service = await readFile(join(out, 'ctun-service.yaml'), 'utf8');
    expect(service).toMatch(/^kind: Service$/m);

    const current = await cli('ctun-run', ['k8s', 'render', '--out', out, '--check']);
    expect(current.exitCode, current.stderr).toBe(0);
    expect(current.stdout).toContain('are current');

    // A hand-edited manifest is named as stale, with the command that renews it.
    await appendFile(join(out, 'ctun-service.yaml'), '# edited by hand\n');
    const stale = await cli('ctun-run', ['k8s', 'render', '--out', out, '--check']);
    expect(stale.exitCode).toBe(1);
    expect(stale.stderr).toContain(`ctun-run k8s: error: stale in ${out}: ctun-service.yaml\n`);
    expect(stale.stderr).toContain(`ctun-run k8s: hint: run ctun-run k8s render --out ${out}`);
  });

  it('a bad flag is a usage error (exit 1) naming the flag, and nothing is written', async () => {
    for (const [args, message] of [
      [['--port', '99999'], 'ctun-run k8s: error: Expected the port to be 1-65535, got 99999'],
      [['--replicas', '0'], 'ctun-run k8s: error: Expected replicas to be 1-100, got 0'],
      [['--shm-size', 'bogus'], 'ctun-run k8s: error: Expected the shm size to be a quantity such as 256Mi, got "bogus"'],
    ] as const) {
      const out = join(work, `bad-${args[0].slice(2)}`);
      const r = await cli('ctun-run', ['k8s', 'render', '--out', out, '--validate', ...args]);
      expect(r.exitCode, r.stderr).toBe(1);
      expect(r.stderr).toContain(message);
      expect(existsSync(out)).toBe(false);
    }
  });
});

describe('ctun-build standin', () => {
  it('--out DIR writes the stand-in tarball and prints its path and sha256', async () => {
    const out = join(work, 'standin');
    const r = await cli('ctun-build', ['standin', '--out', out]);
    expect(r.exitCode, r.stderr).toBe(0);
    const path = join(out, 'dspace-veos-2023a.tar.gz');
    const sha = createHash('sha256').update(await readFile(path)).digest('hex');
    expect(r.stdout.trim()).toBe(`${path} sha256=${sha}`);
    const listing = await execa('tar', ['-tzf', path]);
    expect(listing.stdout.split('\n').length).toBeGreaterThan(1);
  });
});
