import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dearmor, gpgShowKeys, parsePublicKey, readPublicKey } from './keys.js';
import { tempDir } from '../lab/testing.js';

// A real ed25519 public key made with `gpg --quick-gen-key` for these tests.
const ARMORED = `-----BEGIN PGP PUBLIC KEY BLOCK-----

mDMEawSTExYJKwYBBAHaRw8BAQdAmpQjHsbUg5HvmQMSwChTCaws8TztyggcBtMw
P0Mne/G0ImN0dW4gdGVzdCBmZWVkIDxmZWVkQGN0dW4uaW52YWxpZD6IkAQTFggA
OBYhBNcOp8EmWmoxw5SU27qHU0VNFSRkBQJrBJMTAhsDBQsJCAcCBhUKCQgLAgQW
AgMBAh4BAheAAAoJELqHU0VNFSRkr3kBAOAJ7yIdeNJAJfcwxa9HgQ4Zbegz8rlr
R5NvGs9t78VJAP9RhvW2XAelRvJd9bHIRI4jUIV/DyJrpfum2KhXglcNDA==
=gmfl
-----END PGP PUBLIC KEY BLOCK-----
`;

// The same key from \`gpg --export\` (binary), base64.
const BINARY = 'mDMEawSTExYJKwYBBAHaRw8BAQdAmpQjHsbUg5HvmQMSwChTCaws8TztyggcBtMwP0Mne/G0ImN0dW4gdGVzdCBmZWVkIDxmZWVkQGN0dW4uaW52YWxpZD6IkAQTFggAOBYhBNcOp8EmWmoxw5SU27qHU0VNFSRkBQJrBJMTAhsDBQsJCAcCBhUKCQgLAgQWAgMBAh4BAheAAAoJELqHU0VNFSRkr3kBAOAJ7yIdeNJAJfcwxa9HgQ4Zbegz8rlrR5NvGs9t78VJAP9RhvW2XAelRvJd9bHIRI4jUIV/DyJrpfum2KhXglcNDA==';

describe('package server keys', () => {
  it('dearmors an ASCII-armored key into the binary packets apt reads with signed-by', () => {
    const key = parsePublicKey('k.asc', Buffer.from(ARMORED));
    expect(key.armored).toBe(true);
    expect(key.keyring.toString('base64')).toBe(BINARY); // byte for byte what \`gpg --export\` writes
    expect(key.userIds).toEqual(['ctun test feed <feed@ctun.invalid>']);
    // the same key given in binary is taken as it is
    const binary = parsePublicKey('k.gpg', key.keyring);
    expect(binary.armored).toBe(false);
    expect(binary.keyring.equals(key.keyring)).toBe(true);
  });

  it('refuses what is not a public key, naming the file', () => {
    const bad = [
      Buffer.from('this is a README, not a key\n'),
      Buffer.from('-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nbm90IGEga2V5\n-----END PGP PUBLIC KEY BLOCK-----\n'),
      Buffer.from([0x99, 0x00, 0x05, 1, 2]), // truncated packet
    ];
    for (const b of bad) {
      expect(() => parsePublicKey('/srv/microsoft.asc', b)).toThrowError(expect.objectContaining({ code: 'DOTNET_KEY_INVALID', exitCode: 1 }));
    }
    expect(() => parsePublicKey('/srv/x', Buffer.from('nope'))).toThrow('the key file /srv/x is neither an ASCII-armored nor a binary OpenPGP public key');
    expect(dearmor('no armor here')).toBeUndefined();
  });

  it('a missing key file is its own error', async () => {
    await expect(readPublicKey('/nonexistent/ctun/key.asc')).rejects.toMatchObject({ code: 'DOTNET_KEY_MISSING' });
  });

  it('gpg agrees: fingerprints for a key, an error for a non-key', async () => {
    const dir = tempDir('keys');
    await writeFile(join(dir, 'k.asc'), ARMORED);
    await writeFile(join(dir, 'no.asc'), 'not a key');
    const fprs = await gpgShowKeys(join(dir, 'k.asc'));
    // A missing gpg is a failure, not a silent pass: CI installs gnupg (.ci/run).
    if (fprs === undefined) expect.fail('gpg is not installed: install gnupg (apt-get install gnupg) to run this test');
    expect(fprs[0]).toMatch(/^[0-9A-F]{40}$/);
    await expect(gpgShowKeys(join(dir, 'no.asc'))).rejects.toMatchObject({ code: 'DOTNET_KEY_INVALID' });
  });
});
