export { AeadSealer, SealError, peekKeyId, SEAL_OVERHEAD, REKEY_INTERVAL, type DatagramSealer, type SealFailure, type KeyDeriver, type Direction, type Cipher } from './sealer.js';
export { ReplayWindow } from './replay.js';
export {
  loadTlsMaterial,
  serverTlsOptions,
  clientTlsOptions,
  describeProtection,
  peerIdentity,
  tlsKeyDeriver,
  tlsFailure,
  unauthorizedReason,
  encodeKeyRecord,
  decodeKeyRecord,
  randomKeyId,
  KEY_RECORD_SIZE,
  type TlsFiles,
  type TlsMaterial,
} from './tls.js';
