/** The lab: processes with awaited output, network namespaces, veths and bridges, undone in reverse. */
export * from './process.js';
export * from './netns.js';
export * from './lab.js';
