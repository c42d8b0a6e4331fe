/**
 * Docker deployments (`ctun-run`): plans for the integrated and the separated
 * deployment, the one executor, readiness waits, status/stop/clean by label, and the
 * client started on this host with --connect.
 */
export * from './plan.js';
export * from './errors.js';
export * from './wait.js';
export * from './probe.js';
export * from './execute.js';
export * from './manage.js';
export * from './connect.js';
export * from './tls.js';
export * from './tunnel-status.js';
