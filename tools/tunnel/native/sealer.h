// A sealed session's keys, send counter and replay window (PROTOCOL.md, "Secured
// transport"), in the addon, so that the data fast path (fastpath.h) can seal and open
// datagrams of --tls UDP without waking JavaScript, and TypeScript's control messages
// (secure/native-sealer.ts) draw from the very same counter: a nonce is never used
// twice, whichever side sealed.
//
// Keys come from JavaScript: `derive(direction, epoch)` exports them from the TLS
// session when an epoch (REKEY_INTERVAL datagrams) first needs one; it is called
// synchronously, also from a reader's wake-up, and returns undefined when it cannot.
// The semantics are TypeScript's AeadSealer's (secure/sealer.ts), which the unit tests
// hold both implementations to.
#pragma once
#include <napi.h>
#include <openssl/evp.h>

#include <stdint.h>

#include <map>
#include <string>
#include <vector>

#include "aead.h"

namespace ctun {

class Sealer : public Napi::ObjectWrap<Sealer> {
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::FunctionReference constructor;

  // new Sealer(keyId, sendsC2s: boolean, cipher, rekeyInterval: number, windowBits, derive)
  explicit Sealer(const Napi::CallbackInfo& info);
  ~Sealer() override;

  // Bytes a sealed Data datagram adds to its frame: header, Data header, tag.
  static constexpr size_t kOverhead = aead::kSealedDataOverhead;
  uint32_t keyId() const { return keyId_; }

  // Why a datagram did not open; as TypeScript's SealFailure, in its order.
  enum Failure { kOk = 0, kTruncated = 1, kNotSealed, kUnknownKey, kBadTag, kReplayed, kTooOld, kExhausted };

  // Seals `frame` as one Data message under the next counter into `out` (frame +
  // kOverhead bytes); returns the datagram's length, 0 when the counter is exhausted or no key.
  size_t SealData(const uint8_t* frame, size_t flen, uint8_t* out);
  // Seals the parts (`plain` bytes in all) under the next counter into `out` (header,
  // ciphertext, tag: plain + 29 bytes); returns that length, 0 as SealData.
  size_t Seal(const aead::Part* parts, size_t n, size_t plain, uint8_t* out);

  // What Open found out about an authenticated datagram, for Accept or Restore.
  struct Opened {
    uint64_t counter;
    uint64_t epoch;
    size_t plain;  // the plaintext's length, after the 13-byte header
  };
  // Checks and decrypts in place without marking it seen: kOk, or why not (the bytes
  // of a kBadTag datagram are garbage; the rest are untouched).
  Failure Open(uint8_t* d, size_t len, Opened& opened);
  // The opened datagram is taken: its counter is seen, the window and epoch move.
  void Accept(const Opened& opened);
  // The opened datagram is not taken: its bytes become what arrived again.
  bool Restore(uint8_t* d, size_t len, const Opened& opened);

 private:
  struct RecvKey {
    EVP_CIPHER_CTX* dec;
    EVP_CIPHER_CTX* enc;  // the same key, for Restore
  };

  // sealFrames(frames: Buffer[], out: Buffer, lengths: Uint32Array) -> count
  Napi::Value SealFramesJs(const Napi::CallbackInfo& info);
  // seal(parts: Buffer[]) -> Buffer | null (exhausted)
  Napi::Value SealJs(const Napi::CallbackInfo& info);
  // open(datagram) -> plaintext length (decrypted in place after the header) or -Failure
  Napi::Value OpenJs(const Napi::CallbackInfo& info);
  // epochs() -> [send, receive]
  Napi::Value EpochsJs(const Napi::CallbackInfo& info);

  // The key of (direction, epoch) from JavaScript, or false.
  bool Derive(bool c2s, uint64_t epoch, uint8_t key[32]);
  // The send context for the next counter (derived at an epoch's start), or nullptr.
  EVP_CIPHER_CTX* SendContext();
  RecvKey* RecvContext(uint64_t epoch);
  bool Seen(uint64_t counter, Failure& why) const;
  void Mark(uint64_t counter);

  Napi::Env env_;
  Napi::FunctionReference derive_;
  const EVP_CIPHER* cipher_ = nullptr;
  uint32_t keyId_ = 0;
  bool sendsC2s_ = true;
  uint64_t interval_ = 1;
  uint64_t sendCounter_ = 0;
  int64_t sendEpoch_ = -1;
  EVP_CIPHER_CTX* send_ = nullptr;
  std::map<uint64_t, RecvKey> recv_;
  uint64_t recvEpoch_ = 0;
  std::vector<uint32_t> window_;
  uint64_t windowBits_ = 0;
  bool any_ = false;
  uint64_t highest_ = 0;
};

// The Sealer a JavaScript value wraps, or nullptr.
Sealer* SealerOf(const Napi::Value& value);

void InitSealer(Napi::Env env, Napi::Object exports);

}  // namespace ctun
