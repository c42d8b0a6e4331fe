import { ListrTaskEventType, type ListrRenderer, type ListrTaskObject } from 'listr2';

/**
 * How progress is shown: `tty` the rich listr2 renderer, `plain` one line per event
 * (CI logs, pipes), `json` one JSON object per line (tests, tools), `silent` nothing.
 */
export type ProgressMode = 'tty' | 'plain' | 'json' | 'silent';

/** `tty` on a terminal, `plain` otherwise. */
export function defaultProgress(isTTY: boolean | undefined = process.stdout.isTTY): ProgressMode {
  return isTTY ? 'tty' : 'plain';
}

type AnyTask = ListrTaskObject<any, any, any>;

/** Where the JSON renderer writes; default process.stdout. */
export interface JsonLinesRendererOptions {
  write?: (line: string) => void;
}

/**
 * A listr2 renderer that prints every task event as one JSON object per line:
 * `{"task":"…","event":"state","state":"STARTED"}`, `{"task":"…","event":"output","line":"…"}`.
 * Progress becomes something a test can parse and assert on.
 */
export class JsonLinesRenderer implements ListrRenderer {
  static nonTTY = true;
  static rendererOptions: JsonLinesRendererOptions = {};
  static rendererTaskOptions: Record<PropertyKey, never> = {};
  private readonly write: (line: string) => void;
  private readonly seen = new Set<string>();

  constructor(
    private readonly tasks: AnyTask[],
    options: JsonLinesRendererOptions,
  ) {
    this.write = options.write ?? ((l) => process.stdout.write(l + '\n'));
  }

  render(): void {
    this.attach(this.tasks, []);
  }

  end(err?: Error): void {
    this.emit({ event: 'end', ok: err === undefined, ...(err ? { error: err.message.split('\n')[0] } : {}) });
  }

  private emit(record: Record<string, unknown>): void {
    this.write(JSON.stringify({ time: new Date().toISOString(), ...record }));
  }

  private attach(tasks: AnyTask[], parents: string[]): void {
    for (const task of tasks) {
      if (this.seen.has(task.id)) continue;
      this.seen.add(task.id);
      const path = (): string[] => [...parents, task.title ?? ''];
      task.on(ListrTaskEventType.STATE, (state: string) => this.emit({ task: path().join(' > '), event: 'state', state }));
      task.on(ListrTaskEventType.OUTPUT, (data: string) => {
        for (const line of String(data).split('\n')) if (line !== '') this.emit({ task: path().join(' > '), event: 'output', line });
      });
      task.on(ListrTaskEventType.MESSAGE, (message: { error?: string; skip?: string | boolean }) => {
        if (message.error) this.emit({ task: path().join(' > '), event: 'error', error: message.error });
        if (message.skip) this.emit({ task: path().join(' > '), event: 'skip', reason: message.skip });
      });
      task.on(ListrTaskEventType.SUBTASK, (subtasks: AnyTask[]) => this.attach(subtasks, path()));
    }
  }
}

/** listr2 options for a progress mode. */
export function listrRendererOptions(mode: ProgressMode, write?: (line: string) => void): Record<string, unknown> {
  switch (mode) {
    case 'tty':
      return { renderer: 'default', fallbackRenderer: 'simple', rendererOptions: { collapseSubtasks: false, showErrorMessage: false } };
    case 'plain':
      return { renderer: 'simple', fallbackRenderer: 'simple', rendererOptions: {} };
    case 'json':
      return { renderer: JsonLinesRenderer, fallbackRenderer: JsonLinesRenderer, rendererOptions: write ? { write } : {} };
    case 'silent':
      return { renderer: 'silent', fallbackRenderer: 'silent' };
  }
}
