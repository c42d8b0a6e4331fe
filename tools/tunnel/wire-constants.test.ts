/**
 * The addon carries its own copy of the wire format (native/wire.h): it filters
 * garbage before JavaScript (plausible message types, the sealed marker, the header
 * size and its zero flags byte), frames batches with Data headers and seals them. The
 * home of each constant is TypeScript (protocol.ts, secure/aead.ts behind sealer.ts);
 * the addon exports its copy as `wire`, and this test holds the two equal, so a new
 * message type or a changed layout cannot be silently mishandled by the native path.
 */
import { describe, expect, it } from 'vitest';
import { loadAddon } from './native.js';
import { HEADER_SIZE, MessageType } from './protocol.js';
import { COUNTER_OFFSET, HEADER_BYTES, KEY_BYTES, KEY_ID_OFFSET, NONCE_BYTES, TAG_BYTES } from './secure/aead.js';
import { SEAL_OVERHEAD, SEALED_MARKER } from './secure/sealer.js';

describe('wire constants in the addon', () => {
  it('are the TypeScript ones', () => {
    const types = Object.values(MessageType).filter((v): v is number => typeof v === 'number');
    expect(loadAddon().wire).toEqual({
      headerSize: HEADER_SIZE,
      typeData: MessageType.Data,
      typeMin: Math.min(...types),
      typeMax: Math.max(...types),
      sealedMarker: SEALED_MARKER,
      sealedKeyIdOffset: KEY_ID_OFFSET,
      sealedCounterOffset: COUNTER_OFFSET,
      sealedHeaderSize: HEADER_BYTES,
      tagSize: TAG_BYTES,
      keySize: KEY_BYTES,
      nonceSize: NONCE_BYTES,
    });
    expect(HEADER_BYTES + TAG_BYTES).toBe(SEAL_OVERHEAD);
  });
});
