/**
 * Whatever arrives on the tunnel port: garbage, a peer of another protocol version,
 * an oversized frame. Each is answered with the documented error or dropped, and a
 * good client in the same run keeps working.
 */
import { TUNNEL_DEFAULTS } from '../../tools/common/index.js';
import { afterEach, describe, expect, it } from 'vitest';
import { encode, ERROR_ECHO_FLAG, ErrorCode, HEADER_SIZE, MAGIC, MessageType } from '../../tools/tunnel/protocol.js';
import { netnsUnavailable, pcEvilSim, Scope } from './harness/netns.js';

const skip = netnsUnavailable();
const scope = new Scope();
afterEach(() => scope.dispose());

function helloOfVersion(version: number): Buffer {
  const payload = Buffer.alloc(32);
  MAGIC.copy(payload, 0);
  payload.writeUInt8(version, 4);
  const h = Buffer.from([MessageType.Hello, 0, 0, 32]);
  return Buffer.concat([h, payload]);
}

function oversizedData(bytes: number): Buffer {
  const h = Buffer.alloc(HEADER_SIZE);
  h.writeUInt8(MessageType.Data, 0);
  h.writeUInt16BE(bytes, 2);
  return Buffer.concat([h, Buffer.alloc(bytes, 0xab)]);
}

/** Decodes an Error message at the start of a hex reply (v2 errors may carry the echo flag). */
function errorCodeOf(hex: string): number | undefined {
  const b = Buffer.from(hex, 'hex');
  if (b.length < HEADER_SIZE + 2 || b.readUInt8(0) !== MessageType.Error) return undefined;
  return b.readUInt16BE(HEADER_SIZE) & ~ERROR_ECHO_FLAG;
}

async function setup(transport: 'udp' | 'tcp') {
  const { pc, evil, sim } = await pcEvilSim(scope);
  const server = scope.track(sim.spawnCtun(['server', '--transport', transport]));
  await server.waitFor(/server-listening/, 15_000);
  const client = scope.track(pc.spawnCtun(['client', '10.79.0.2', '--transport', transport]));
  await client.waitFor(/client-connected/, 15_000);
  return { pc, evil, server };
}

describe.skipIf(skip)('hostile input on the tunnel port', () => {
  it('UDP: garbage and oversized frames are dropped, another version is told why, the good client keeps working', async () => {
    const { pc, evil, server } = await setup('udp');
    const garbage = await evil.probe('raw-udp', '10.79.1.2', String(TUNNEL_DEFAULTS.port), 'deadbeefcafe0001', '800');
    expect(garbage.replies).toEqual([]);
    const oversized = await evil.probe('raw-udp', '10.79.1.2', String(TUNNEL_DEFAULTS.port), oversizedData(9300).toString('hex'), '800');
    expect(oversized.replies).toEqual([]);
    const wrongVersion = await evil.probe('raw-udp', '10.79.1.2', String(TUNNEL_DEFAULTS.port), helloOfVersion(9).toString('hex'), '800');
    expect((wrongVersion.replies as string[]).map(errorCodeOf)).toEqual([ErrorCode.VersionMismatch]);
    // Told why in no more bytes than it sent (no amplification): the reason is cut to fit.
    const reply = Buffer.from((wrongVersion.replies as string[])[0]!, 'hex');
    expect(reply.length).toBeLessThanOrEqual(helloOfVersion(9).length);
    expect(reply.toString('utf8')).toContain('v9 unsupported');
    // Data from a peer without a session: told to say hello, nothing forwarded.
    const noSession = await evil.probe('raw-udp', '10.79.1.2', String(TUNNEL_DEFAULTS.port), encode({ type: MessageType.Data, frame: Buffer.alloc(60, 0xff) }).toString('hex'), '800');
    expect((noSession.replies as string[]).map(errorCodeOf)).toEqual([ErrorCode.NoSession]);

    await server.waitFor(/invalid-message .*code=TooLarge/, 5000);
    await server.waitFor(/invalid-message .*code=VersionMismatch/, 5000);
    expect(await pc.ping(TUNNEL_DEFAULTS.serverAddress)).toBe(true);
    // Garbage is dropped below JavaScript, but counted with the rest.
    const mark = server.output.length;
    server.kill('SIGUSR1');
    const stats = await server.waitFor(/stats sessions=.*/, 5000, mark);
    expect(Number(/clients\.dropsInvalid=(\d+)/.exec(stats)![1])).toBeGreaterThanOrEqual(3);
  });

  it('TCP: garbage and an oversized frame close only that connection, with the error code; the good client keeps working', async () => {
    const { pc, evil, server } = await setup('tcp');
    const garbage = await evil.probe('raw-tcp', '10.79.1.2', String(TUNNEL_DEFAULTS.port), 'ffffffffffffffff', '1500');
    expect(garbage).toMatchObject({ closed: true });
    expect(errorCodeOf(garbage.reply as string)).toBe(ErrorCode.TooLarge);
    const unknownType = await evil.probe('raw-tcp', '10.79.1.2', String(TUNNEL_DEFAULTS.port), '63000001aa', '1500');
    expect(errorCodeOf(unknownType.reply as string)).toBe(ErrorCode.Malformed);
    const oversized = await evil.probe('raw-tcp', '10.79.1.2', String(TUNNEL_DEFAULTS.port), oversizedData(20_000).toString('hex'), '1500');
    expect(oversized).toMatchObject({ closed: true });
    expect(errorCodeOf(oversized.reply as string)).toBe(ErrorCode.TooLarge);
    const wrongVersion = await evil.probe('raw-tcp', '10.79.1.2', String(TUNNEL_DEFAULTS.port), helloOfVersion(9).toString('hex'), '1500');
    expect(errorCodeOf(wrongVersion.reply as string)).toBe(ErrorCode.VersionMismatch);

    await server.waitFor(/invalid-message .*code=TooLarge/, 5000);
    expect(await pc.ping(TUNNEL_DEFAULTS.serverAddress)).toBe(true);
  });
});
