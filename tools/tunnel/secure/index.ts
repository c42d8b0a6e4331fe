export { AeadSealer, SealError, peekKeyId, SEAL_OVERHEAD, SEALED_MARKER, REKEY_INTERVAL, type DatagramSealer, type SealFailure, type KeyDeriver, type Direction, type Cipher } from './sealer.js';
export { createSealer, NativeSealer, sealFailureOf } from './native-sealer.js';
export { ReplayWindow } from './replay.js';
export { PendingGate, type PendingGateOptions } from './gate.js';
export {
  loadTlsMaterial,
  serverTlsOptions,
  clientTlsOptions,
  describeProtection,
  peerIdentity,
  peerFingerprint,
  revokedSerials,
  peerRevoked,
  peerOf,
  tlsKeyDeriver,
  STREAM_EXPORTER_LABEL,
  tlsFailure,
  unauthorizedReason,
  admitClient,
  reportTlsError,
  encodeKeyRecord,
  decodeKeyRecord,
  randomKeyId,
  KEY_RECORD_SIZE,
  type TlsFiles,
  type TlsMaterial,
} from './tls.js';
export { connectTls, refusedError } from './tls-connect.js';
export { nativeAeadAgrees } from './aead.js';
