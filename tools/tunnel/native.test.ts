/** The addon check at load: an addon from an older build is named, with what it lacks, before anything calls it. */
import { describe, expect, it } from 'vitest';
import { CtunError, ExitCode } from '../common/index.js';
import { assertAddonCurrent, loadAddon } from './native.js';

describe('assertAddonCurrent', () => {
  it('passes the addon of this build', () => {
    expect(() => assertAddonCurrent(loadAddon(), 'built')).not.toThrow();
  });

  it('names an older addon and what it lacks (ADDON_STALE, exit 6)', () => {
    const { busyPoll: _a, busyPollStats: _b, ...older } = loadAddon();
    let thrown: unknown;
    try {
      assertAddonCurrent(older, '/opt/old/ctun_tap.node');
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(CtunError);
    const e = thrown as CtunError;
    expect(e.code).toBe('ADDON_STALE');
    expect(e.exitCode).toBe(ExitCode.Device);
    expect(e.message).toBe('the TAP addon /opt/old/ctun_tap.node is older than this ctun: it lacks busyPoll, busyPollStats');
    expect(e.hint).toContain('npm ci');
  });
});
