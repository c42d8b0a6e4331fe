import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { DockerStreamError, readDockerStream, type DockerStreamEvent } from './stream.js';

/** Feeds raw text to the reader in the given chunks, as the socket would. */
function feed(chunks: string[]) {
  const s = new PassThrough();
  queueMicrotask(() => {
    for (const c of chunks) s.write(c);
    s.end();
  });
  return s;
}

// The shape of a classic-builder answer, as dockerd 20.10 sends it: the step header
// and its newline arrive as separate objects, output lines in between.
const failing = [
  '{"stream":"Step 1/3 : FROM debian:12"}\r\n{"stream":"\\n"}\r\n{"stream":" ---\\u003e 5d1c\\n"}\r\n',
  '{"stream":"Step 2/3 : RUN apt-get update"}\r\n{"stream":"\\n"}\r\n{"stream":" ---\\u003e Using cache\\n"}\r\n',
  '{"stream":"Step 3/3 : RUN apt-get install -y no-such-package"}\r\n{"stream":"\\n"}\r\n',
  '{"stream":" ---\\u003e Running in 0b1e\\n"}\r\n{"stream":"Reading package lists...\\n"}\r\n{"str',
  'eam":"\\u001b[91mE: Unable to locate package no-such-package\\u001b[0m\\n"}\r\n',
  '{"errorDetail":{"code":100,"message":"The command \'/bin/sh -c apt-get install -y no-such-package\' returned a non-zero code: 100"},"error":"The command \'/bin/sh -c apt-get install -y no-such-package\' returned a non-zero code: 100"}\r\n',
];

describe('readDockerStream', () => {
  it('turns errorDetail inside a 200 stream into an error naming the step and its log tail', async () => {
    const err = await readDockerStream(feed(failing), { operation: 'build', subject: 'x:1' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DockerStreamError);
    const e = err as DockerStreamError;
    expect(e.code).toBe('BUILD_STEP_FAILED');
    expect(e.step).toEqual({ number: 3, total: 3, instruction: 'RUN apt-get install -y no-such-package' });
    expect(e.logTail).toEqual(['Reading package lists...', 'E: Unable to locate package no-such-package']);
    expect(e.message.split('\n')[0]).toBe(
      "build of x:1 failed at step 3/3 `RUN apt-get install -y no-such-package`: The command '/bin/sh -c apt-get install -y no-such-package' returned a non-zero code: 100",
    );
    expect(e.message).toContain('  | E: Unable to locate package no-such-package');
    expect(e.hint).toBeTruthy();
  });

  it('resolves a clean build with steps, events and the image id', async () => {
    const events: DockerStreamEvent[] = [];
    const ok = [
      '{"stream":"Step 1/2 : FROM debian:12"}\n{"stream":"\\n"}\n',
      '{"stream":"Step 2/2 : LABEL a=b"}\n{"stream":"\\n"}\n{"stream":" ---\\u003e Running in 1\\n"}\n',
      `{"aux":{"ID":"sha256:${'a'.repeat(64)}"}}\n{"stream":"Successfully built aaaaaaaaaaaa\\n"}\n`,
      '{"stream":"Successfully tagged x:1\\n"}',
    ];
    const r = await readDockerStream(feed(ok), { operation: 'build', subject: 'x:1', onEvent: (e) => events.push(e) });
    expect(r.imageId).toBe(`sha256:${'a'.repeat(64)}`);
    expect(r.steps.map((s) => s.instruction)).toEqual(['FROM debian:12', 'LABEL a=b']);
    expect(events.filter((e) => e.type === 'step')).toHaveLength(2);
    expect(r.tail.at(-1)).toBe('Successfully tagged x:1');
  });

  it('reports pull/push/import errors without a step', async () => {
    const s = ['{"status":"Pulling from library/debian","id":"12"}\n', '{"errorDetail":{"message":"manifest unknown"},"error":"manifest unknown"}\n'];
    const e = (await readDockerStream(feed(s), { operation: 'pull', subject: 'debian:12' }).catch((x: unknown) => x)) as DockerStreamError;
    expect(e.code).toBe('DOCKER_STREAM_FAILED');
    expect(e.message.split('\n')[0]).toBe('pull of debian:12 failed: manifest unknown');
    expect(e.logTail).toEqual(['12: Pulling from library/debian']);
  });

  it('takes the image id from an import answer', async () => {
    const r = await readDockerStream(feed([`{"status":"sha256:${'b'.repeat(64)}"}\r\n`]), { operation: 'import', subject: 'debian:12' });
    expect(r.imageId).toBe(`sha256:${'b'.repeat(64)}`);
  });

  it('keeps only the last lines of a long step', async () => {
    const lines = Array.from({ length: 100 }, (_, i) => `{"stream":"line ${i}\\n"}\n`);
    const s = ['{"stream":"Step 1/1 : RUN noisy\\n"}\n', ...lines, '{"error":"boom"}\n'];
    const e = (await readDockerStream(feed(s), { operation: 'build', subject: 'n', tailLines: 5 }).catch((x: unknown) => x)) as DockerStreamError;
    expect(e.logTail).toEqual(['line 95', 'line 96', 'line 97', 'line 98', 'line 99']);
    expect(e.detail).toBe('boom');
  });

  it('turns a broken connection into a CtunError with a hint', async () => {
    const s = new PassThrough();
    queueMicrotask(() => s.destroy(new Error('socket hang up')));
    await expect(readDockerStream(s, { operation: 'build', subject: 'x' })).rejects.toMatchObject({ code: 'DOCKER_STREAM_BROKEN' });
  });
});
