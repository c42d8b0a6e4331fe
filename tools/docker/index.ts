/**
 * The only code that talks to the Docker daemon: images, containers, networks, logs,
 * exec; streams, errors, labels, contexts — and its in-memory twin.
 */
export * from './labels.js';
export * from './stream.js';
export * from './engine.js';
export * from './errors.js';
export * from './dockerode.js';
export * from './context.js';
export * from './memory.js';
export * from './files.js';
