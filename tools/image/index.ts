/**
 * Image builds: BuildPlans (pure, printable), apt sources, package sources, build
 * contexts, the bundled tunnel, base images from an apt mirror, and the executor.
 */
export * from './apt.js';
export * from './plan.js';
export * from './paths.js';
export * from './template.js';
export * from './bundle.js';
export * from './context.js';
export * from './base.js';
export * from './execute.js';
export * from './tarball.js';
export * from './commands.js';
export * from './keys.js';
export * from './sources.js';
export * from './airgap.js';
export * from './release.js';
export * from './wheels/index.js';
export * from './inputs.js';
export * from './supply/index.js';
export * from './tunnel-digest.js';
