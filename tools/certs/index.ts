export { initCa, issueServer, issueClient, revoke, type CertsOptions, type IssuedFiles } from './certs.js';
