/** The one dockerode wrapper: streams, errors, labels, contexts, image checks. */
export * from './labels.js';
export * from './stream.js';
export * from './engine.js';
export * from './context.js';
export * from './memory.js';
export * from './files.js';
