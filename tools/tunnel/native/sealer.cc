// See sealer.h.
#include "sealer.h"

#include "aead.h"
#include "wire.h"

#include <string.h>

namespace ctun {

namespace {

// A sender stops long before the counter could wrap (sealer.ts MAX_COUNTER).
constexpr uint64_t kMaxCounter = 1ull << 60;
constexpr size_t kHeader = wire::kSealedHeaderSize;
constexpr size_t kTag = wire::kTagSize;

}  // namespace

Napi::FunctionReference Sealer::constructor;

Napi::Function Sealer::Init(Napi::Env env) {
  Napi::Function f = DefineClass(env, "Sealer",
                                 {InstanceMethod("sealFrames", &Sealer::SealFramesJs), InstanceMethod("seal", &Sealer::SealJs),
                                  InstanceMethod("open", &Sealer::OpenJs), InstanceMethod("epochs", &Sealer::EpochsJs)});
  constructor = Napi::Persistent(f);
  constructor.SuppressDestruct();
  return f;
}

Sealer* SealerOf(const Napi::Value& value) {
  if (!value.IsObject() || Sealer::constructor.IsEmpty() || !value.As<Napi::Object>().InstanceOf(Sealer::constructor.Value())) return nullptr;
  return Sealer::Unwrap(value.As<Napi::Object>());
}

Sealer::Sealer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Sealer>(info), env_(info.Env()) {
  Napi::Env env = info.Env();
  if (info.Length() < 6 || !info[0].IsNumber() || !info[1].IsBoolean() || !info[2].IsString() || !info[3].IsNumber() || !info[4].IsNumber() || !info[5].IsFunction()) {
    Napi::TypeError::New(env, "new Sealer(keyId, sendsC2s, cipher, rekeyInterval, windowBits, derive)").ThrowAsJavaScriptException();
    return;
  }
  keyId_ = info[0].As<Napi::Number>().Uint32Value();
  sendsC2s_ = info[1].As<Napi::Boolean>().Value();
  std::string name = info[2].As<Napi::String>();
  cipher_ = aead::CipherNamed(name);
  double interval = info[3].As<Napi::Number>().DoubleValue();
  double bits = info[4].As<Napi::Number>().DoubleValue();
  if (cipher_ == nullptr || !(interval >= 1) || !(bits >= 32) || static_cast<uint64_t>(bits) % 32 != 0) {
    Napi::RangeError::New(env, "unknown cipher, a rekey interval below 1 or a window that is not a positive multiple of 32").ThrowAsJavaScriptException();
    return;
  }
  interval_ = static_cast<uint64_t>(interval);
  windowBits_ = static_cast<uint64_t>(bits);
  window_.assign(windowBits_ / 32, 0);
  derive_ = Napi::Persistent(info[5].As<Napi::Function>());
}

Sealer::~Sealer() {
  // Frees the expanded keys too (OpenSSL cleanses them).
  EVP_CIPHER_CTX_free(send_);
  for (auto& [epoch, k] : recv_) {
    EVP_CIPHER_CTX_free(k.dec);
    EVP_CIPHER_CTX_free(k.enc);
  }
}

bool Sealer::Derive(bool c2s, uint64_t epoch, uint8_t key[32]) {
  Napi::HandleScope scope(env_);
  Napi::Value v = derive_.Call({Napi::String::New(env_, c2s ? "c2s" : "s2c"), Napi::Number::New(env_, static_cast<double>(epoch))});
  if (env_.IsExceptionPending()) {
    env_.GetAndClearPendingException();
    return false;
  }
  if (!v.IsBuffer() || v.As<Napi::Buffer<uint8_t>>().Length() != wire::kKeySize) return false;
  memcpy(key, v.As<Napi::Buffer<uint8_t>>().Data(), wire::kKeySize);
  return true;
}

EVP_CIPHER_CTX* Sealer::SendContext() {
  if (sendCounter_ >= kMaxCounter) return nullptr;
  int64_t epoch = static_cast<int64_t>(sendCounter_ / interval_);
  if (epoch != sendEpoch_ || send_ == nullptr) {
    uint8_t key[wire::kKeySize];
    if (!Derive(sendsC2s_, static_cast<uint64_t>(epoch), key)) return nullptr;
    EVP_CIPHER_CTX_free(send_);
    send_ = aead::NewContext(cipher_, key, true);
    memset(key, 0, sizeof key);
    sendEpoch_ = epoch;
  }
  return send_;
}

Sealer::RecvKey* Sealer::RecvContext(uint64_t epoch) {
  auto k = recv_.find(epoch);
  if (k != recv_.end()) return &k->second;
  uint8_t key[wire::kKeySize];
  if (!Derive(!sendsC2s_, epoch, key)) return nullptr;
  RecvKey made{aead::NewContext(cipher_, key, false), aead::NewContext(cipher_, key, true)};
  memset(key, 0, sizeof key);
  if (made.dec == nullptr || made.enc == nullptr) {
    EVP_CIPHER_CTX_free(made.dec);
    EVP_CIPHER_CTX_free(made.enc);
    return nullptr;
  }
  return &(recv_[epoch] = made);
}

size_t Sealer::SealData(const uint8_t* frame, size_t flen, uint8_t* out) {
  EVP_CIPHER_CTX* ctx = SendContext();
  if (ctx == nullptr) return 0;
  size_t n = aead::SealData(ctx, keyId_, sendCounter_, frame, flen, out);
  // The counter moves even if sealing failed: a nonce that met the cipher is spent.
  sendCounter_++;
  return n;
}

size_t Sealer::Seal(const aead::Part* parts, size_t n, size_t plain, uint8_t* out) {
  EVP_CIPHER_CTX* ctx = SendContext();
  if (ctx == nullptr) return 0;
  aead::WriteHeader(out, keyId_, sendCounter_++);
  return aead::SealAfterHeader(ctx, out, parts, n) ? kHeader + plain + kTag : 0;
}

bool Sealer::Seen(uint64_t counter, Failure& why) const {
  if (!any_ || counter > highest_) return false;
  if (highest_ - counter >= windowBits_) {
    why = kTooOld;
    return true;
  }
  uint64_t i = counter % windowBits_;
  if ((window_[i >> 5] & (1u << (i & 31))) == 0) return false;
  why = kReplayed;
  return true;
}

void Sealer::Mark(uint64_t counter) {
  if (!any_ || counter > highest_) {
    uint64_t advance = any_ ? counter - highest_ : windowBits_;
    if (advance >= windowBits_) {
      std::fill(window_.begin(), window_.end(), 0);
    } else {
      // Clear the slots the window slides over: they now stand for new counters.
      for (uint64_t c = highest_ + 1; c <= counter; c++) window_[(c % windowBits_) >> 5] &= ~(1u << ((c % windowBits_) & 31));
    }
    highest_ = counter;
    any_ = true;
  }
  uint64_t i = counter % windowBits_;
  window_[i >> 5] |= 1u << (i & 31);
}

Sealer::Failure Sealer::Open(uint8_t* d, size_t len, Opened& opened) {
  if (len < kHeader + kTag) return kTruncated;
  if (d[0] != wire::kSealedMarker) return kNotSealed;
  if (aead::KeyIdOf(d) != keyId_) return kUnknownKey;
  uint64_t counter = aead::CounterOf(d);
  if (counter >= kMaxCounter) return kBadTag;
  Failure why = kOk;
  if (Seen(counter, why)) return why;
  uint64_t epoch = counter / interval_;
  // Only the epochs next to the current one have keys; anything else is forged or far
  // too late, and must not make us derive keys without bound.
  if (epoch + 1 < recvEpoch_ || epoch > recvEpoch_ + 1) return kBadTag;
  RecvKey* key = RecvContext(epoch);
  if (key == nullptr || !aead::OpenInPlace(key->dec, d, len)) return kBadTag;
  opened = {counter, epoch, len - kHeader - kTag};
  return kOk;
}

void Sealer::Accept(const Opened& opened) {
  Mark(opened.counter);
  if (opened.epoch > recvEpoch_) {
    recvEpoch_ = opened.epoch;
    for (auto k = recv_.begin(); k != recv_.end();) {
      if (k->first + 1 < recvEpoch_) {
        EVP_CIPHER_CTX_free(k->second.dec);
        EVP_CIPHER_CTX_free(k->second.enc);
        k = recv_.erase(k);
      } else {
        ++k;
      }
    }
  }
}

bool Sealer::Restore(uint8_t* d, size_t len, const Opened& opened) {
  auto k = recv_.find(opened.epoch);
  return k != recv_.end() && aead::CloseAgain(k->second.enc, d, len);
}

Napi::Value Sealer::SealFramesJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array frames = info[0].As<Napi::Array>();
  Napi::Buffer<uint8_t> out = info[1].As<Napi::Buffer<uint8_t>>();
  Napi::Uint32Array lengths = info[2].As<Napi::Uint32Array>();
  uint32_t count = aead::SealBatch(frames, out, lengths, [this](const uint8_t* f, size_t flen, uint8_t* at) { return SealData(f, flen, at); });
  return Napi::Number::New(env, count);
}

Napi::Value Sealer::SealJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t plain = 0;
  std::vector<aead::Part> parts = aead::PartsOf(info[0].As<Napi::Array>(), plain);
  // Sized before sealing; an exhausted counter (or no key) seals nothing.
  Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(env, kHeader + plain + kTag);
  if (Seal(parts.data(), parts.size(), plain, out.Data()) == 0) return env.Null();
  return out;
}

Napi::Value Sealer::OpenJs(const Napi::CallbackInfo& info) {
  Napi::Buffer<uint8_t> d = info[0].As<Napi::Buffer<uint8_t>>();
  Opened opened{};
  Failure why = Open(d.Data(), d.Length(), opened);
  if (why != kOk) return Napi::Number::New(info.Env(), -static_cast<double>(why));
  Accept(opened);
  return Napi::Number::New(info.Env(), static_cast<double>(opened.plain));
}

Napi::Value Sealer::EpochsJs(const Napi::CallbackInfo& info) {
  Napi::Array a = Napi::Array::New(info.Env(), 2);
  a.Set(0u, static_cast<double>(sendEpoch_ < 0 ? 0 : sendEpoch_));
  a.Set(1u, static_cast<double>(recvEpoch_));
  return a;
}

void InitSealer(Napi::Env env, Napi::Object exports) {
  exports.Set("Sealer", Sealer::Init(env));
}

}  // namespace ctun
