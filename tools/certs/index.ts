export { initCa, issueServer, issueClient, issueSigner, revoke, type CertsOptions, type IssuedFiles } from './certs.js';
