/** Observability of a tunnel end: Prometheus metrics, health endpoints, status (JSON and a live line). */
export * from './figures.js';
export * from './registry.js';
export * from './endpoint.js';
export * from './status-line.js';
export * from './query.js';
export * from './serve.js';
