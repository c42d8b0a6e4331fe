// Sealing and opening datagrams with a kept OpenSSL context (aead.cc): the primitives
// that the addon's `Aead` (one key, for TypeScript's sealer) and `Sealer` (a session's
// keys, counter and replay window, sealer.h) both run.
#pragma once
#include <napi.h>
#include <openssl/evp.h>

#include <stddef.h>
#include <stdint.h>

#include <string>
#include <vector>

#include "wire.h"

namespace ctun {
namespace aead {

// The cipher by its name ('aes-256-gcm' | 'chacha20-poly1305'), or nullptr.
const EVP_CIPHER* CipherNamed(const std::string& name);
// A context that seals (encrypt) or opens with `key` (32 bytes); nullptr on failure.
EVP_CIPHER_CTX* NewContext(const EVP_CIPHER* cipher, const uint8_t* key, bool encrypt);

// Writes the sealed header (marker, key id, counter) at `out`.
void WriteHeader(uint8_t* out, uint32_t keyId, uint64_t counter);
// The key id and the counter of a sealed header.
uint32_t KeyIdOf(const uint8_t* header);
uint64_t CounterOf(const uint8_t* header);
// Bytes a sealed datagram of one Data message adds to its frame: sealed header, Data
// header, tag.
constexpr size_t kSealedDataOverhead = wire::kSealedHeaderSize + wire::kHeaderSize + wire::kTagSize;

// A part of the plaintext.
struct Part {
  const uint8_t* data;
  size_t len;
};
// The Buffers of a JavaScript array as parts; `plain` gets their total length.
std::vector<Part> PartsOf(const Napi::Array& list, size_t& plain);
// Seals the parts after the header already at `out` (13 bytes): ciphertext, then
// tag. `out` holds header + the parts' bytes + 16.
bool SealAfterHeader(EVP_CIPHER_CTX* enc, uint8_t* out, const Part* parts, size_t n);
// Seals `frame` as one Data message under (keyId, counter) into `out` (header, Data
// header, frame, tag: frame + kSealedDataOverhead); returns the datagram's length, 0 on failure.
size_t SealData(EVP_CIPHER_CTX* enc, uint32_t keyId, uint64_t counter, const uint8_t* frame, size_t flen, uint8_t* out);
// Authenticates and decrypts a whole sealed datagram in place (the plaintext follows
// the header); false if it does not authenticate (the bytes are then garbage).
bool OpenInPlace(EVP_CIPHER_CTX* dec, uint8_t* d, size_t len);
// Undoes OpenInPlace of an authenticated datagram: encrypting the plaintext again
// under the same key and nonce gives back the very bytes that arrived (the AEAD is
// deterministic), so a datagram the native path opened but does not forward reaches
// TypeScript as it came. No new ciphertext is made: nothing a nonce reuse could leak.
bool CloseAgain(EVP_CIPHER_CTX* enc, uint8_t* d, size_t len);

// The batch of sealFrames(frames, ..., out, lengths) from JavaScript: each frame sealed
// as one Data datagram by `one(frame, flen, at)` (its length, 0 to stop) into `out`,
// one after another, lengths[i] each, until `out` or `lengths` is full. How many.
template <typename SealOne>
uint32_t SealBatch(const Napi::Array& frames, const Napi::Buffer<uint8_t>& out, Napi::Uint32Array& lengths, SealOne one) {
  uint32_t n = frames.Length();
  if (n > lengths.ElementLength()) n = static_cast<uint32_t>(lengths.ElementLength());
  size_t off = 0;
  uint32_t count = 0;
  for (; count < n; count++) {
    Napi::Buffer<uint8_t> f = frames.Get(count).As<Napi::Buffer<uint8_t>>();
    if (f.Length() > 0xffff || off + f.Length() + kSealedDataOverhead > out.Length()) break;
    size_t total = one(f.Data(), f.Length(), out.Data() + off);
    if (total == 0) break;
    lengths[count] = static_cast<uint32_t>(total);
    off += total;
  }
  return count;
}

}  // namespace aead

void InitAead(Napi::Env env, Napi::Object exports);
}  // namespace ctun
