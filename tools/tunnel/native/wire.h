// The wire format as the addon needs it (PROTOCOL.md). Its home is TypeScript
// (protocol.ts, secure/aead.ts and sealer.ts); this copy is exported to JavaScript as
// the addon's `wire` object, and tools/tunnel/wire-constants.test.ts compares the two,
// so the native path cannot drift from the one it filters and seals for.
#pragma once
#include <napi.h>

#include <stddef.h>
#include <stdint.h>

namespace ctun {
namespace wire {

// Plain messages: type (u8) | flags (u8, 0) | payload length (u16 BE) | payload.
constexpr size_t kHeaderSize = 4;
constexpr uint8_t kTypeData = 1;  // MessageType.Data
constexpr uint8_t kTypeMin = 1;   // MessageType.Data
constexpr uint8_t kTypeMax = 7;   // MessageType.Bye

// Sealed datagrams: marker (u8) | key id (u32 BE) | counter (u64 BE) | ciphertext | tag.
constexpr uint8_t kSealedMarker = 0xC5;
constexpr size_t kSealedKeyIdOffset = 1;
constexpr size_t kSealedCounterOffset = 5;
constexpr size_t kSealedHeaderSize = 13;
constexpr size_t kTagSize = 16;
constexpr size_t kKeySize = 32;
// Nonce: 4 zero bytes, then the header's counter.
constexpr size_t kNonceSize = 12;

static_assert(kSealedCounterOffset + 8 == kSealedHeaderSize, "the counter ends the sealed header");
static_assert(kNonceSize == 4 + 8, "the nonce is 4 zero bytes and the counter");

// The constants above as a plain object, for the test that holds them to TypeScript's.
inline Napi::Object Constants(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("headerSize", static_cast<double>(kHeaderSize));
  o.Set("typeData", static_cast<double>(kTypeData));
  o.Set("typeMin", static_cast<double>(kTypeMin));
  o.Set("typeMax", static_cast<double>(kTypeMax));
  o.Set("sealedMarker", static_cast<double>(kSealedMarker));
  o.Set("sealedKeyIdOffset", static_cast<double>(kSealedKeyIdOffset));
  o.Set("sealedCounterOffset", static_cast<double>(kSealedCounterOffset));
  o.Set("sealedHeaderSize", static_cast<double>(kSealedHeaderSize));
  o.Set("tagSize", static_cast<double>(kTagSize));
  o.Set("keySize", static_cast<double>(kKeySize));
  o.Set("nonceSize", static_cast<double>(kNonceSize));
  o.Freeze();
  return o;
}

}  // namespace wire
}  // namespace ctun
