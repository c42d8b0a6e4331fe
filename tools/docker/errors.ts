/**
 * How the daemon says no. dockerode rejects with the HTTP status in `statusCode` and
 * the response body in `json`; the in-memory twin throws {@link DockerRefusal}, which
 * has the same shape, so callers handle both alike.
 */

/** The HTTP status of a daemon refusal (404 absent, 409 conflict, ...), if there is one. */
export function dockerStatus(e: unknown): number | undefined {
  const s = (e as { statusCode?: unknown })?.statusCode;
  return typeof s === 'number' ? s : undefined;
}

/** The daemon's own message (dockerode puts the HTTP body's `message` in `json`). */
export function daemonMessage(e: unknown): string {
  const json = (e as { json?: { message?: unknown } } | undefined)?.json;
  if (json && typeof json.message === 'string') return json.message.trim();
  return String((e as Error)?.message ?? e).replace(/^\(HTTP code \d+\)\s*(unexpected|server error|conflict)?\s*-\s*/i, '').trim();
}

/** A refusal shaped as dockerode's: what the in-memory twin throws. */
export class DockerRefusal extends Error {
  readonly json: { message: string };
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(`(HTTP code ${statusCode}) ${message}`);
    this.json = { message };
  }
}
