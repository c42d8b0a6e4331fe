// AEAD for sealed datagrams (PROTOCOL.md, "Secured transport") with the key schedule
// kept: Node's createCipheriv builds a cipher object per call, about 20 µs a datagram,
// which capped sealed UDP at a few hundred Mbit/s. Here one EVP context per key and
// direction is set up once and only the nonce changes per datagram. The OpenSSL
// symbols are Node's own (the node binary exports them), so no library is linked and
// the cipher is the one Node's crypto would use.
//
// Layout of a sealed datagram: header (13: marker, key id, counter) | ciphertext | tag (16).
// The header is the associated data; the nonce is 4 zero bytes and the 8-byte counter.
#include "aead.h"
#include "wire.h"

#include <string.h>

#include <string>
#include <vector>

namespace ctun {
namespace aead {

namespace {

constexpr size_t kHeader = wire::kSealedHeaderSize;
constexpr size_t kTag = wire::kTagSize;

void NonceOf(const uint8_t* header, uint8_t nonce[wire::kNonceSize]) {
  memset(nonce, 0, 4);
  memcpy(nonce + 4, header + wire::kSealedCounterOffset, 8);
}

// Starts a datagram: the nonce from its header, the header as associated data.
bool Begin(EVP_CIPHER_CTX* ctx, const uint8_t* header, bool encrypt) {
  uint8_t nonce[wire::kNonceSize];
  NonceOf(header, nonce);
  int len = 0;
  if (encrypt) return EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, nonce) == 1 && EVP_EncryptUpdate(ctx, nullptr, &len, header, kHeader) == 1;
  return EVP_DecryptInit_ex(ctx, nullptr, nullptr, nullptr, nonce) == 1 && EVP_DecryptUpdate(ctx, nullptr, &len, header, kHeader) == 1;
}

}  // namespace

const EVP_CIPHER* CipherNamed(const std::string& name) {
  return name == "aes-256-gcm" ? EVP_aes_256_gcm() : name == "chacha20-poly1305" ? EVP_chacha20_poly1305() : nullptr;
}

EVP_CIPHER_CTX* NewContext(const EVP_CIPHER* cipher, const uint8_t* key, bool encrypt) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (ctx == nullptr) return nullptr;
  int ok = encrypt ? EVP_EncryptInit_ex(ctx, cipher, nullptr, key, nullptr) : EVP_DecryptInit_ex(ctx, cipher, nullptr, key, nullptr);
  if (ok != 1) {
    EVP_CIPHER_CTX_free(ctx);
    return nullptr;
  }
  return ctx;
}

void WriteHeader(uint8_t* o, uint32_t keyId, uint64_t counter) {
  o[0] = wire::kSealedMarker;
  for (int b = 0; b < 4; b++) o[wire::kSealedKeyIdOffset + b] = static_cast<uint8_t>(keyId >> (24 - 8 * b));
  for (int b = 0; b < 8; b++) o[wire::kSealedCounterOffset + b] = static_cast<uint8_t>(counter >> (56 - 8 * b));
}

uint32_t KeyIdOf(const uint8_t* h) {
  const uint8_t* k = h + wire::kSealedKeyIdOffset;
  return (static_cast<uint32_t>(k[0]) << 24) | (static_cast<uint32_t>(k[1]) << 16) | (static_cast<uint32_t>(k[2]) << 8) | k[3];
}

uint64_t CounterOf(const uint8_t* h) {
  uint64_t c = 0;
  for (int b = 0; b < 8; b++) c = (c << 8) | h[wire::kSealedCounterOffset + b];
  return c;
}

std::vector<Part> PartsOf(const Napi::Array& list, size_t& plain) {
  std::vector<Part> parts(list.Length());
  plain = 0;
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Buffer<uint8_t> p = list.Get(i).As<Napi::Buffer<uint8_t>>();
    parts[i] = {p.Data(), p.Length()};
    plain += p.Length();
  }
  return parts;
}

bool SealAfterHeader(EVP_CIPHER_CTX* enc, uint8_t* o, const Part* parts, size_t n) {
  if (!Begin(enc, o, true)) return false;
  size_t off = kHeader;
  size_t plain = 0;
  int len = 0;
  for (size_t i = 0; i < n; i++) {
    if (parts[i].len == 0) continue;
    if (EVP_EncryptUpdate(enc, o + off, &len, parts[i].data, static_cast<int>(parts[i].len)) != 1) return false;
    off += static_cast<size_t>(len);
    plain += parts[i].len;
  }
  if (EVP_EncryptFinal_ex(enc, o + off, &len) != 1) return false;
  off += static_cast<size_t>(len);
  return off == kHeader + plain && EVP_CIPHER_CTX_ctrl(enc, EVP_CTRL_AEAD_GET_TAG, kTag, o + off) == 1;
}

size_t SealData(EVP_CIPHER_CTX* enc, uint32_t keyId, uint64_t counter, const uint8_t* frame, size_t flen, uint8_t* out) {
  if (flen > 0xffff) return 0;
  WriteHeader(out, keyId, counter);
  uint8_t data[wire::kHeaderSize] = {wire::kTypeData, 0, static_cast<uint8_t>(flen >> 8), static_cast<uint8_t>(flen)};
  Part parts[2] = {{data, wire::kHeaderSize}, {frame, flen}};
  return SealAfterHeader(enc, out, parts, 2) ? kHeader + wire::kHeaderSize + flen + kTag : 0;
}

bool OpenInPlace(EVP_CIPHER_CTX* dec, uint8_t* d, size_t len) {
  if (len < kHeader + kTag) return false;
  size_t plain = len - kHeader - kTag;
  uint8_t* body = d + kHeader;
  uint8_t tag[kTag];
  memcpy(tag, body + plain, kTag);
  int n = 0;
  bool ok = Begin(dec, d, false);
  size_t off = 0;
  if (ok && plain > 0) {
    ok = EVP_DecryptUpdate(dec, body, &n, body, static_cast<int>(plain)) == 1;
    off = static_cast<size_t>(n);
  }
  ok = ok && EVP_CIPHER_CTX_ctrl(dec, EVP_CTRL_AEAD_SET_TAG, kTag, tag) == 1;
  return ok && EVP_DecryptFinal_ex(dec, body + off, &n) == 1;
}

bool CloseAgain(EVP_CIPHER_CTX* enc, uint8_t* d, size_t len) {
  if (len < kHeader + kTag) return false;
  size_t plain = len - kHeader - kTag;
  int n = 0;
  if (!Begin(enc, d, true)) return false;
  size_t off = kHeader;
  if (plain > 0) {
    if (EVP_EncryptUpdate(enc, d + off, &n, d + off, static_cast<int>(plain)) != 1) return false;
    off += static_cast<size_t>(n);
  }
  // The tag that came is still in place; the one computed again is the same.
  uint8_t tail[16];
  return EVP_EncryptFinal_ex(enc, tail, &n) == 1;
}

}  // namespace aead

namespace {

constexpr size_t kHeader = wire::kSealedHeaderSize;
constexpr size_t kTag = wire::kTagSize;
constexpr size_t kKey = wire::kKeySize;

// One key for TypeScript's AeadSealer (secure/aead.ts): seal, sealFrames, open.
class Aead : public Napi::ObjectWrap<Aead> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Aead", {InstanceMethod("seal", &Aead::Seal), InstanceMethod("sealFrames", &Aead::SealFrames), InstanceMethod("open", &Aead::Open)});
  }

  // new Aead(key: Buffer (32 bytes), cipher: 'aes-256-gcm' | 'chacha20-poly1305')
  Aead(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Aead>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsBuffer() || !info[1].IsString()) {
      Napi::TypeError::New(env, "new Aead(key: Buffer, cipher: string)").ThrowAsJavaScriptException();
      return;
    }
    Napi::Buffer<uint8_t> key = info[0].As<Napi::Buffer<uint8_t>>();
    std::string name = info[1].As<Napi::String>();
    const EVP_CIPHER* cipher = aead::CipherNamed(name);
    if (cipher == nullptr) {
      Napi::TypeError::New(env, "unknown cipher " + name).ThrowAsJavaScriptException();
      return;
    }
    if (key.Length() != kKey) {
      Napi::RangeError::New(env, "the key must be 32 bytes").ThrowAsJavaScriptException();
      return;
    }
    enc_ = aead::NewContext(cipher, key.Data(), true);
    dec_ = aead::NewContext(cipher, key.Data(), false);
    if (enc_ == nullptr || dec_ == nullptr) Napi::Error::New(env, "cannot set up " + name).ThrowAsJavaScriptException();
  }

  ~Aead() override {
    // Frees the expanded key too (OpenSSL cleanses it).
    EVP_CIPHER_CTX_free(enc_);
    EVP_CIPHER_CTX_free(dec_);
  }

 private:
  // seal(header: Buffer (13), parts: Buffer[]) -> Buffer: header | ciphertext | tag.
  Napi::Value Seal(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Buffer<uint8_t> header = info[0].As<Napi::Buffer<uint8_t>>();
    Napi::Array list = info[1].As<Napi::Array>();
    if (header.Length() != kHeader) {
      Napi::RangeError::New(env, "the header must be 13 bytes").ThrowAsJavaScriptException();
      return env.Undefined();
    }
  size_t plain = 0;
  std::vector<aead::Part> parts = aead::PartsOf(list, plain);
    Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(env, kHeader + plain + kTag);
    memcpy(out.Data(), header.Data(), kHeader);
    if (!aead::SealAfterHeader(enc_, out.Data(), parts.data(), parts.size())) {
      Napi::Error::New(env, "sealing failed").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    return out;
  }

  // sealFrames(frames: Buffer[], keyId, counterHi, counterLo, out: Buffer, lengths: Uint32Array) -> count.
  // Seals each frame as one Data message (4-byte header + frame) under consecutive
  // counters from (hi, lo), into `out` one after another, lengths[i] each; stops when
  // `out` or `lengths` is full. The data path's batch: one call and no allocation per
  // datagram (seal() costs a call and a buffer each).
  Napi::Value SealFrames(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array frames = info[0].As<Napi::Array>();
    uint32_t keyId = info[1].As<Napi::Number>().Uint32Value();
    uint64_t counter = (static_cast<uint64_t>(info[2].As<Napi::Number>().Uint32Value()) << 32) | info[3].As<Napi::Number>().Uint32Value();
    Napi::Buffer<uint8_t> out = info[4].As<Napi::Buffer<uint8_t>>();
    Napi::Uint32Array lengths = info[5].As<Napi::Uint32Array>();
    bool failed = false;
    uint32_t count = aead::SealBatch(frames, out, lengths, [&](const uint8_t* f, size_t flen, uint8_t* at) {
      size_t total = aead::SealData(enc_, keyId, counter, f, flen, at);
      failed = total == 0;
      counter++;
      return total;
    });
    if (failed) {
      Napi::Error::New(env, "sealing failed").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    return Napi::Number::New(env, count);
  }

  // open(datagram: Buffer) -> number: the plaintext's length, decrypted in place after
  // the 13-byte header (datagram[13, 13 + n)), or -1 if it does not authenticate (the
  // bytes are then garbage). In place: the receive path allocates nothing per datagram.
  // Header and length are the caller's to check first (it counts why a datagram failed).
  Napi::Value Open(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Buffer<uint8_t> d = info[0].As<Napi::Buffer<uint8_t>>();
    if (!aead::OpenInPlace(dec_, d.Data(), d.Length())) return Napi::Number::New(env, -1);
    return Napi::Number::New(env, static_cast<double>(d.Length() - kHeader - kTag));
  }

  EVP_CIPHER_CTX* enc_ = nullptr;
  EVP_CIPHER_CTX* dec_ = nullptr;
};

}  // namespace

void InitAead(Napi::Env env, Napi::Object exports) {
  exports.Set("Aead", Aead::Init(env));
}

}  // namespace ctun
