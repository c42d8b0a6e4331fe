import { chmod, copyFile, link, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CtunError } from '../common/index.js';
import { bundleScript } from './bundle.js';
import { readPublicKey } from './keys.js';
import { missingInputHint, type ProjectPaths } from './paths.js';
import type { ContextFile, ImageStep } from './plan.js';
import { strippedCopy } from './strip-elf.js';
import { renderTemplate } from './template.js';

/**
 * The Dockerfile of a step, filled in from its template, with the step's labels as
 * one final LABEL instruction (the Engine's `labels` build option would add one
 * step, and one container, per label).
 */
export async function renderDockerfile(step: ImageStep, paths: ProjectPaths): Promise<string> {
  const text = await readFile(join(paths.dockerfiles, step.dockerfile.template), 'utf8');
  const rendered = renderTemplate(text, step.dockerfile.values, step.dockerfile.template);
  const labels = Object.entries(step.labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return labels.length ? `${rendered.trimEnd()}\nLABEL ${labels.join(' \\\n      ')}\n` : rendered;
}

/** A text file of the context (rendered templates and literal texts); undefined for copied files. */
export async function renderContextText(file: ContextFile, paths: ProjectPaths): Promise<string | undefined> {
  if (file.from.kind === 'text') return file.from.text;
  if (file.from.kind === 'template') {
    const text = await readFile(join(paths.templates, file.from.template), 'utf8');
    return renderTemplate(text, file.from.values, file.from.template);
  }
  return undefined;
}

// A hard link costs nothing for the large Node binary; across file systems, copy.
async function placeFile(given: string, target: string, mode: number | undefined, strip = false): Promise<void> {
  const source = strip ? await strippedCopy(given).catch(() => given) : given;
  const s = await stat(source).catch((e: unknown) => {
    throw new CtunError('CONTEXT_FILE_MISSING', `${source} is missing`, {
      hint: source.includes('node_modules') || source.endsWith('.node') ? missingInputHint() : 'check the path',
      cause: e,
    });
  });
  await mkdir(dirname(target), { recursive: true });
  const wanted = mode ?? s.mode & 0o777;
  if ((s.mode & 0o777) === wanted) {
    try {
      await link(source, target);
      return;
    } catch {
      // EXDEV or similar: copy below
    }
  }
  await copyFile(source, target);
  await chmod(target, wanted);
}

/** Writes a step's build context into `dir` (which must be empty). */
export async function materializeContext(step: ImageStep, paths: ProjectPaths, dir: string): Promise<void> {
  await writeFile(join(dir, 'Dockerfile'), await renderDockerfile(step, paths));
  // The build arguments travel beside the Dockerfile too, so the context digest (and
  // with it "up to date") changes when only they do.
  if (step.buildArgs) await writeFile(join(dir, 'build-args.json'), JSON.stringify(step.buildArgs, Object.keys(step.buildArgs).sort(), 2) + '\n');
  for (const file of step.context) {
    const target = join(dir, file.path);
    const from = file.from;
    switch (from.kind) {
      case 'file':
        await placeFile(from.path, target, from.mode, from.strip);
        break;
      case 'dir':
        await mkdir(target, { recursive: true });
        for (const f of from.files) await placeFile(join(from.path, f), join(target, f), undefined);
        break;
      case 'bundle':
        await bundleScript({ entry: from.entry, outFile: target });
        break;
      case 'keyring':
        await mkdir(dirname(target), { recursive: true });
        await writeFile(target, (await readPublicKey(from.path)).keyring, { mode: 0o644 });
        break;
      case 'text':
      case 'template': {
        await mkdir(dirname(target), { recursive: true });
        await writeFile(target, (await renderContextText(file, paths))!);
        if (from.mode !== undefined) await chmod(target, from.mode);
        break;
      }
    }
  }
}
