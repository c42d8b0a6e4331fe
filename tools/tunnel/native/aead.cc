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

#include <openssl/evp.h>
#include <string.h>

#include <string>

namespace ctun {
namespace {

constexpr size_t kHeader = wire::kSealedHeaderSize;
constexpr size_t kTag = wire::kTagSize;
constexpr size_t kKey = wire::kKeySize;

void NonceOf(const uint8_t* header, uint8_t nonce[wire::kNonceSize]) {
  memset(nonce, 0, 4);
  memcpy(nonce + 4, header + wire::kSealedCounterOffset, 8);
}

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
    const EVP_CIPHER* cipher = name == "aes-256-gcm" ? EVP_aes_256_gcm() : name == "chacha20-poly1305" ? EVP_chacha20_poly1305() : nullptr;
    if (cipher == nullptr) {
      Napi::TypeError::New(env, "unknown cipher " + name).ThrowAsJavaScriptException();
      return;
    }
    if (key.Length() != kKey) {
      Napi::RangeError::New(env, "the key must be 32 bytes").ThrowAsJavaScriptException();
      return;
    }
    enc_ = EVP_CIPHER_CTX_new();
    dec_ = EVP_CIPHER_CTX_new();
    if (enc_ == nullptr || dec_ == nullptr || EVP_EncryptInit_ex(enc_, cipher, nullptr, key.Data(), nullptr) != 1 ||
        EVP_DecryptInit_ex(dec_, cipher, nullptr, key.Data(), nullptr) != 1) {
      Napi::Error::New(env, "cannot set up " + name).ThrowAsJavaScriptException();
    }
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
    Napi::Array parts = info[1].As<Napi::Array>();
    if (header.Length() != kHeader) {
      Napi::RangeError::New(env, "the header must be 13 bytes").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    uint32_t n = parts.Length();
    size_t plain = 0;
    for (uint32_t i = 0; i < n; i++) plain += parts.Get(i).As<Napi::Buffer<uint8_t>>().Length();
    Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(env, kHeader + plain + kTag);
    uint8_t* o = out.Data();
    memcpy(o, header.Data(), kHeader);
    uint8_t nonce[wire::kNonceSize];
    NonceOf(o, nonce);
    int len = 0;
    bool ok = EVP_EncryptInit_ex(enc_, nullptr, nullptr, nullptr, nonce) == 1 && EVP_EncryptUpdate(enc_, nullptr, &len, o, kHeader) == 1;
    size_t off = kHeader;
    for (uint32_t i = 0; ok && i < n; i++) {
      Napi::Buffer<uint8_t> p = parts.Get(i).As<Napi::Buffer<uint8_t>>();
      if (p.Length() == 0) continue;
      ok = EVP_EncryptUpdate(enc_, o + off, &len, p.Data(), static_cast<int>(p.Length())) == 1;
      off += static_cast<size_t>(len);
    }
    ok = ok && EVP_EncryptFinal_ex(enc_, o + off, &len) == 1;
    off += static_cast<size_t>(len);
    ok = ok && off == kHeader + plain && EVP_CIPHER_CTX_ctrl(enc_, EVP_CTRL_AEAD_GET_TAG, kTag, o + off) == 1;
    if (!ok) {
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
    uint32_t n = frames.Length();
    if (n > lengths.ElementLength()) n = static_cast<uint32_t>(lengths.ElementLength());
    size_t off = 0;
    uint32_t count = 0;
    for (; count < n; count++, counter++) {
      Napi::Buffer<uint8_t> f = frames.Get(count).As<Napi::Buffer<uint8_t>>();
      size_t flen = f.Length();
      size_t total = kHeader + wire::kHeaderSize + flen + kTag;
      if (flen > 0xffff || off + total > out.Length()) break;
      uint8_t* o = out.Data() + off;
      o[0] = wire::kSealedMarker;
      for (int b = 0; b < 4; b++) o[wire::kSealedKeyIdOffset + b] = static_cast<uint8_t>(keyId >> (24 - 8 * b));
      for (int b = 0; b < 8; b++) o[wire::kSealedCounterOffset + b] = static_cast<uint8_t>(counter >> (56 - 8 * b));
      uint8_t data[wire::kHeaderSize] = {wire::kTypeData, 0, static_cast<uint8_t>(flen >> 8), static_cast<uint8_t>(flen)};
      uint8_t nonce[wire::kNonceSize];
      NonceOf(o, nonce);
      int len = 0;
      bool ok = EVP_EncryptInit_ex(enc_, nullptr, nullptr, nullptr, nonce) == 1 && EVP_EncryptUpdate(enc_, nullptr, &len, o, kHeader) == 1 &&
                EVP_EncryptUpdate(enc_, o + kHeader, &len, data, wire::kHeaderSize) == 1;
      size_t p = kHeader + static_cast<size_t>(len);
      if (ok && flen > 0) {
        ok = EVP_EncryptUpdate(enc_, o + p, &len, f.Data(), static_cast<int>(flen)) == 1;
        p += static_cast<size_t>(len);
      }
      ok = ok && EVP_EncryptFinal_ex(enc_, o + p, &len) == 1;
      p += static_cast<size_t>(len);
      ok = ok && p == kHeader + wire::kHeaderSize + flen && EVP_CIPHER_CTX_ctrl(enc_, EVP_CTRL_AEAD_GET_TAG, kTag, o + p) == 1;
      if (!ok) {
        Napi::Error::New(env, "sealing failed").ThrowAsJavaScriptException();
        return env.Undefined();
      }
      lengths[count] = static_cast<uint32_t>(total);
      off += total;
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
    if (d.Length() < kHeader + kTag) return Napi::Number::New(env, -1);
    size_t plain = d.Length() - kHeader - kTag;
    uint8_t* body = d.Data() + kHeader;
    uint8_t nonce[wire::kNonceSize];
    NonceOf(d.Data(), nonce);
    uint8_t tag[kTag];
    memcpy(tag, body + plain, kTag);
    int len = 0;
    bool ok = EVP_DecryptInit_ex(dec_, nullptr, nullptr, nullptr, nonce) == 1 && EVP_DecryptUpdate(dec_, nullptr, &len, d.Data(), kHeader) == 1;
    size_t off = 0;
    if (ok && plain > 0) {
      ok = EVP_DecryptUpdate(dec_, body, &len, body, static_cast<int>(plain)) == 1;
      off = static_cast<size_t>(len);
    }
    ok = ok && EVP_CIPHER_CTX_ctrl(dec_, EVP_CTRL_AEAD_SET_TAG, kTag, tag) == 1;
    ok = ok && EVP_DecryptFinal_ex(dec_, body + off, &len) == 1;
    return Napi::Number::New(env, ok ? static_cast<double>(plain) : -1);
  }

  EVP_CIPHER_CTX* enc_ = nullptr;
  EVP_CIPHER_CTX* dec_ = nullptr;
};

}  // namespace

void InitAead(Napi::Env env, Napi::Object exports) {
  exports.Set("Aead", Aead::Init(env));
}

}  // namespace ctun
