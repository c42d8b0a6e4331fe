/**
 * The addon filters garbage before JavaScript with its own copy of the wire format
 * (native/tap.cc, `Plausible`): the sealed marker, the range of message types, the
 * header size and its zero flags byte. One home for each is protocol.ts / sealer.ts;
 * this test keeps the C++ copy equal to it, so a new message type or marker cannot be
 * silently dropped by the native path.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { HEADER_SIZE, MessageType } from './protocol.js';
import { SEALED_MARKER } from './secure/index.js';

const source = readFileSync(new URL('./native/tap.cc', import.meta.url), 'utf8');
const plausible = /static bool Plausible\([^)]*\) \{([\s\S]*?)\n  \}/.exec(source)?.[1] ?? '';

describe('wire constants in the addon', () => {
  it('match the TypeScript ones', () => {
    expect(plausible).not.toBe('');
    const marker = /d\[0\] == (0x[0-9A-Fa-f]+)/.exec(plausible)?.[1];
    expect(Number(marker)).toBe(SEALED_MARKER);
    const types = Object.values(MessageType).filter((v): v is number => typeof v === 'number');
    const range = /type < (\d+) \|\| type > (\d+)/.exec(plausible);
    expect([Number(range?.[1]), Number(range?.[2])]).toEqual([Math.min(...types), Math.max(...types)]);
    expect(plausible).toContain(`off + ${HEADER_SIZE} <= len`);
    expect(plausible).toContain(`off += ${HEADER_SIZE} + n`);
    // The flags byte must be 0: v2 signals an error's echo in the code, not in the header flags.
    expect(plausible).toContain('d[off + 1] != 0');
  });
});
