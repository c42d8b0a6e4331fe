/**
 * The tunnel's defaults are the seed's, and the README's option lines say the same.
 * This is the one test that spells them, on purpose: they are what a user types and
 * reads (the seed's `configure.sh` line, its port); every other test imports them.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { metadata, SERVER_CIDR, TUNNEL_DEFAULTS } from './index.js';

const README = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');

describe('TUNNEL_DEFAULTS', () => {
  it('are the seed tooling\'s values, the port read from metadata.json', () => {
    expect(TUNNEL_DEFAULTS).toEqual({
      port: 1723,
      transport: 'udp',
      clientTap: 'dstap0',
      clientAddress: '192.168.100.100',
      serverTap: 'ctun0',
      serverAddress: '192.168.100.1',
      prefix: 24,
      mtu: 1400,
    });
    expect(TUNNEL_DEFAULTS.port).toBe(metadata.defaultPort);
    expect(SERVER_CIDR).toBe('192.168.100.1/24');
  });

  it('are the ones the README\'s option lines name', () => {
    const d = TUNNEL_DEFAULTS;
    // ctun configure's options, the seed's configure line, and ctun server's options.
    expect(README).toContain(`Options: \`--prefix ${d.prefix}\`, \`--user U\` (default \`$SUDO_USER\`), \`--mtu ${d.mtu}\``);
    expect(README).toContain(`$ sudo ctun configure --tap ${d.clientTap} ${d.clientAddress} --non-interactive`);
    expect(README).toContain(`- \`--listen 0.0.0.0\`, \`--port ${d.port}\`, \`--transport ${d.transport}|tcp\`, \`--tap ${d.serverTap}\`,\n  \`--address ${SERVER_CIDR}\`, \`--mtu ${d.mtu}\``);
    expect(README).toContain(`$ ctun server                                   # local mode, UDP ${d.port}, TAP ${d.serverTap} ${SERVER_CIDR}`);
  });
});
