import { CtunError, ExitCode } from '../common/index.js';

/**
 * The Docker Engine answers build, push, pull and import with HTTP 200 and then a
 * stream of JSON objects, one per line. A failure arrives *inside* that stream as
 * `errorDetail`, so a caller that only checks the status code reports success for a
 * failed build. Every such stream goes through {@link readDockerStream}.
 */
export interface DockerStreamMessage {
  stream?: string;
  status?: string;
  id?: string;
  progress?: string;
  progressDetail?: { current?: number; total?: number };
  error?: string;
  errorDetail?: { code?: number; message?: string };
  aux?: { ID?: string } | Record<string, unknown>;
}

/** One Dockerfile step as the classic builder announces it (`Step 3/7 : RUN ...`). */
export interface BuildStep {
  number: number;
  total: number;
  /** The instruction as written in the Dockerfile, e.g. `RUN apt-get install -y curl`. */
  instruction: string;
}

export type DockerStreamEvent =
  | { type: 'step'; step: BuildStep }
  | { type: 'log'; line: string }
  | { type: 'status'; status: string; id?: string; progress?: string };

export type DockerOperation = 'build' | 'import' | 'push' | 'pull';

export interface ReadDockerStreamOptions {
  /** What the stream belongs to; named in errors. */
  operation: DockerOperation;
  /** The image (or other subject) being worked on; named in errors. */
  subject: string;
  /** Lines of output kept for the error message; default 30. */
  tailLines?: number;
  /** Called for every step, log line and status, e.g. to drive progress output. */
  onEvent?: (event: DockerStreamEvent) => void;
}

export interface DockerStreamResult {
  /** `sha256:...` of the built or imported image, when the stream names it. */
  imageId: string | undefined;
  /** Steps seen, in order (builds only). */
  steps: BuildStep[];
  /** The last output lines. */
  tail: string[];
}

/** A step of a build (or a push/pull/import) that failed inside the stream. */
export class DockerStreamError extends CtunError {
  readonly step: BuildStep | undefined;
  readonly logTail: string[];
  readonly detail: string;

  constructor(options: {
    operation: DockerOperation;
    subject: string;
    step: BuildStep | undefined;
    detail: string;
    logTail: string[];
  }) {
    const instruction = options.step?.instruction ?? '';
    const shown = instruction.length > INSTRUCTION_MAX ? `${instruction.slice(0, INSTRUCTION_MAX - 1)}…` : instruction;
    const where = options.step ? ` at step ${options.step.number}/${options.step.total} \`${shown}\`` : '';
    const head = `${options.operation} of ${options.subject} failed${where}: ${options.detail}`;
    const tail = options.logTail.length
      ? `\n--- last ${options.logTail.length} lines of output${options.step ? ' of that step' : ''} ---\n` +
        options.logTail.map((l) => `  | ${l}`).join('\n')
      : '';
    super(options.operation === 'build' ? 'BUILD_STEP_FAILED' : 'DOCKER_STREAM_FAILED', head + tail, {
      hint:
        options.operation === 'build'
          ? 'fix the failing step (the output above is from inside the build container); rerun with --progress plain for the full log'
          : 'see the output above; check that the Docker daemon can reach what it needs',
      exitCode: ExitCode.Failure,
    });
    this.step = options.step;
    this.logTail = options.logTail;
    this.detail = options.detail;
  }
}

const STEP_RE = /^Step (\d+)\/(\d+) : (.*)$/;
// The classic builder colours a step's stderr; the tail is for reading in plain text.
// eslint-disable-next-line no-control-regex
const ANSI_RE = /\u001b\[[0-9;]*[A-Za-z]/g;
// Builder chatter that says nothing about why a step failed.
const NOISE_RE = /^ ---> (Running in|Using cache)|^Removing intermediate container /;
const INSTRUCTION_MAX = 120;
const BUILT_RE = /^Successfully built ([0-9a-f]{12,64})$/;
const SHA_RE = /^sha256:[0-9a-f]{64}$/;

/**
 * Parses one Docker JSON stream. Resolves when the stream ends cleanly; rejects with a
 * {@link DockerStreamError} naming the failing step and its log tail when the stream
 * carries `error`/`errorDetail`, or a CtunError when the connection breaks.
 */
export function readDockerStream(
  stream: NodeJS.ReadableStream,
  options: ReadDockerStreamOptions,
): Promise<DockerStreamResult> {
  const tailMax = options.tailLines ?? 30;
  const steps: BuildStep[] = [];
  let tail: string[] = [];
  let current: BuildStep | undefined;
  let imageId: string | undefined;
  let jsonBuffer = '';
  let textBuffer = '';
  let failure: DockerStreamError | undefined;

  const emit = (event: DockerStreamEvent): void => {
    try {
      options.onEvent?.(event);
    } catch {
      // progress output must never break the build
    }
  };
  const pushTail = (line: string): void => {
    tail.push(line);
    if (tail.length > tailMax) tail = tail.slice(tail.length - tailMax);
  };
  const textLine = (raw: string): void => {
    const line = raw.replace(ANSI_RE, '').replace(/\r$/, '');
    const step = STEP_RE.exec(line);
    if (step) {
      current = { number: Number(step[1]), total: Number(step[2]), instruction: step[3]!.trim() };
      steps.push(current);
      tail = [];
      emit({ type: 'step', step: current });
      return;
    }
    const built = BUILT_RE.exec(line.trim());
    if (built) imageId ??= built[1];
    if (line.trim() === '') return;
    if (!NOISE_RE.test(line)) pushTail(line);
    emit({ type: 'log', line });
  };
  const flushText = (): void => {
    if (textBuffer !== '') {
      textLine(textBuffer);
      textBuffer = '';
    }
  };
  const message = (msg: DockerStreamMessage): void => {
    if (failure) return;
    if (typeof msg.stream === 'string') {
      textBuffer += msg.stream;
      const parts = textBuffer.split('\n');
      textBuffer = parts.pop() ?? '';
      for (const p of parts) textLine(p);
    }
    if (msg.aux && typeof msg.aux === 'object' && typeof (msg.aux as { ID?: unknown }).ID === 'string') {
      imageId = (msg.aux as { ID: string }).ID;
    }
    if (typeof msg.status === 'string') {
      if (SHA_RE.test(msg.status.trim())) imageId = msg.status.trim();
      const ev: DockerStreamEvent = { type: 'status', status: msg.status };
      if (msg.id !== undefined) ev.id = msg.id;
      if (msg.progress !== undefined) ev.progress = msg.progress;
      emit(ev);
      if (msg.progressDetail === undefined || Object.keys(msg.progressDetail).length === 0) {
        pushTail(msg.id ? `${msg.id}: ${msg.status}` : msg.status);
      }
    }
    if (msg.error !== undefined || msg.errorDetail !== undefined) {
      flushText();
      const detail = (msg.errorDetail?.message ?? msg.error ?? 'unknown error').trim();
      failure = new DockerStreamError({
        operation: options.operation,
        subject: options.subject,
        step: current,
        detail,
        logTail: [...tail],
      });
    }
  };
  const jsonLine = (line: string): void => {
    const trimmed = line.trim();
    if (trimmed === '') return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch {
      // Not JSON: some daemons answer plain text (e.g. an import of a broken tar).
      message({ stream: trimmed + '\n' });
      return;
    }
    if (parsed && typeof parsed === 'object') message(parsed as DockerStreamMessage);
  };

  return new Promise((resolve, reject) => {
    stream.on('data', (chunk: Buffer | string) => {
      jsonBuffer += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
      const lines = jsonBuffer.split('\n');
      jsonBuffer = lines.pop() ?? '';
      for (const l of lines) jsonLine(l);
    });
    stream.on('end', () => {
      jsonLine(jsonBuffer);
      jsonBuffer = '';
      flushText();
      if (failure) reject(failure);
      else resolve({ imageId, steps, tail });
    });
    stream.on('error', (err: Error) => {
      reject(
        failure ??
          new CtunError('DOCKER_STREAM_BROKEN', `${options.operation} of ${options.subject}: the connection to the Docker daemon broke: ${err.message}`, {
            hint: 'check that dockerd is still running (`docker info`)',
            cause: err,
          }),
      );
    });
  });
}
