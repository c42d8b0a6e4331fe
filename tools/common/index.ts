export * from './errors.js';
export * from './logger.js';
export * from './metadata.js';
export * from './container.js';
export * from './report.js';
export * from './tunnel-defaults.js';
export * from './host-port.js';
