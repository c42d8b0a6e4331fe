/**
 * The one step runner (steps, progress mode, abort signal, undo in reverse) that
 * builds, deployments and the demo share, and the progress modes it renders in.
 */
export * from './progress.js';
export * from './runner.js';
