// See fastpath.h.
#include "fastpath.h"

#include "server_fastpath.h"
#include "stream_link.h"
#include "wire.h"

#include <time.h>

namespace ctun {
namespace fastpath {

int64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

void Tally::Count(const Frame* list, uint32_t n, int64_t done) {
  if (done < 0) done = 0;
  for (int64_t i = 0; i < done; i++) bytes += static_cast<double>(list[i].len);
  frames += static_cast<double>(done);
  drops += static_cast<double>(n - done);
}

void SendFrames(int udpFd, const Frame* list, uint32_t n, uint32_t ip, uint32_t port, Tally& tally) {
  tally.Count(list, n, datapath::SendDatagrams(udpFd, list, n, ip, port, true));
}

// Frames sealed into the scratch and sent at a time: as many as the data path's
// longest GSO run (datapath.cc, 64 segments).
constexpr uint32_t kSealChunk = 64;

void SendSealed(int udpFd, Sealer& sealer, const Frame* list, uint32_t n, uint32_t ip, uint32_t port, Tally& tally, std::vector<uint8_t>& scratch,
                std::vector<Frame>& sealed) {
  // Sealed and sent a chunk at a time: the scratch stays the size of one chunk instead
  // of growing to a whole batch of a TAP wake-up, up to its 1 MiB, and staying that
  // large. A GSO run may be cut at a chunk's edge: one more message in the sendmmsg.
  int64_t done = 0;
  for (uint32_t first = 0; first < n;) {
    uint32_t end = first + kSealChunk < n ? first + kSealChunk : n;
    size_t bytes = 0;
    for (uint32_t i = first; i < end; i++) bytes += list[i].len + Sealer::kOverhead;
    if (scratch.size() < bytes) scratch.resize(bytes);
    sealed.clear();
    size_t off = 0;
    for (uint32_t i = first; i < end; i++) {
      size_t len = sealer.SealData(list[i].data, list[i].len, scratch.data() + off);
      if (len == 0) break;
      sealed.push_back({scratch.data() + off, len});
      off += len;
    }
    uint32_t k = static_cast<uint32_t>(sealed.size());
    int64_t sent = k == 0 ? 0 : datapath::SendDatagrams(udpFd, sealed.data(), k, ip, port, false);
    if (sent < 0) {
      // An error JavaScript would throw on: the whole batch is drops, unless some left.
      if (done == 0) done = sent;
      break;
    }
    done += sent;
    // A full socket, or frames the sealer could not seal: the rest are drops.
    if (static_cast<uint32_t>(sent) < end - first) break;
    first = end;
  }
  tally.Count(list, n, done);
}

bool OpenData(Sealer& sealer, uint8_t* d, size_t len, std::vector<Frame>& out, Sealer::Opened& opened) {
  if (sealer.Open(d, len, opened) != Sealer::kOk) return false;
  if (DataFrames(d + wire::kSealedHeaderSize, opened.plain, out)) return true;
  // A control message (ping, bye...): JavaScript has it, sealed as it came.
  sealer.Restore(d, len, opened);
  return false;
}

void FlushToTap(int tapFd, bool offload, std::vector<Frame>& pending, Tally& tally) {
  if (pending.empty()) return;
  uint32_t n = static_cast<uint32_t>(pending.size());
  tally.Count(pending.data(), n, datapath::WriteTap(tapFd, pending.data(), n, offload));
  pending.clear();
}

bool DataFrames(const uint8_t* d, size_t len, std::vector<Frame>& out) {
  size_t first = out.size();
  size_t off = 0;
  while (off + wire::kHeaderSize <= len) {
    size_t n = (static_cast<size_t>(d[off + 2]) << 8) | d[off + 3];
    // Only Data with flags 0 and a frame whose length fits what is left; an empty
    // frame is not a frame (JavaScript counts it as it always has).
    if (d[off] != wire::kTypeData || d[off + 1] != 0 || n == 0 || off + wire::kHeaderSize + n > len) break;
    out.push_back({d + off + wire::kHeaderSize, n});
    off += wire::kHeaderSize + n;
  }
  if (off == len && len > 0) return true;
  out.resize(first);
  return false;
}

Napi::FunctionReference FastPath::constructor;

Napi::Function FastPath::Init(Napi::Env env) {
  Napi::Function f = DefineClass(env, "FastPath", {InstanceMethod("counters", &FastPath::Counters), InstanceMethod("close", &FastPath::Close)});
  constructor = Napi::Persistent(f);
  constructor.SuppressDestruct();
  return f;
}

Forwarder* ForwarderOf(Napi::Object object) {
  if (!FastPath::constructor.IsEmpty() && object.InstanceOf(FastPath::constructor.Value())) return FastPath::Unwrap(object);
  if (!ServerFastPath::constructor.IsEmpty() && object.InstanceOf(ServerFastPath::constructor.Value())) return ServerFastPath::Unwrap(object);
  return nullptr;
}

FastPath::FastPath(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FastPath>(info) {
  tapFd_ = info[0].As<Napi::Number>().Int32Value();
  tapOffload_ = info[1].As<Napi::Boolean>().Value();
  udpFd_ = info[2].As<Napi::Number>().Int32Value();
  if (info.Length() > 3 && (stream_ = StreamLinkOf(info[3])) != nullptr) streamRef_ = Napi::Persistent(info[3].As<Napi::Object>());
  if (info.Length() > 4 && (sealer_ = SealerOf(info[4])) != nullptr) sealerRef_ = Napi::Persistent(info[4].As<Napi::Object>());
}

uint32_t FastPath::FromTap(const Frame* frames, uint32_t n, uint32_t*) {
  if (stream_ != nullptr) stream_->SendFrames(frames, n, out_);
  else if (sealer_ != nullptr) SendSealed(udpFd_, *sealer_, frames, n, 0, 0, out_, sealScratch_, sealedList_);
  else SendFrames(udpFd_, frames, n, 0, 0, out_);
  return 0;
}

bool FastPath::FromUdp(uint8_t* d, uint32_t len, uint32_t, uint32_t) {
  if (sealer_ != nullptr) {
    // Sealed, only what authenticates is the server's.
    Sealer::Opened opened;
    if (!OpenData(*sealer_, d, len, pending_, opened)) return false;
    sealer_->Accept(opened);
    heardNs_ = NowNs();
    return true;
  }
  // Heard: any datagram the connected socket got is the server's, whoever handles it.
  heardNs_ = NowNs();
  return DataFrames(d, len, pending_);
}

void FastPath::Flush() { FlushToTap(tapFd_, tapOffload_, pending_, in_); }

Napi::Value FastPath::Counters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array a = Napi::Array::New(env, 7);
  a.Set(0u, out_.frames);
  a.Set(1u, out_.bytes);
  a.Set(2u, out_.drops);
  a.Set(3u, in_.frames);
  a.Set(4u, in_.bytes);
  a.Set(5u, in_.drops);
  a.Set(6u, heardNs_ < 0 ? -1.0 : static_cast<double>(NowNs() - heardNs_) / 1e6);
  return a;
}

Napi::Value FastPath::Close(const Napi::CallbackInfo& info) {
  active_ = false;
  pending_.clear();
  return info.Env().Undefined();
}

namespace {

// dataFrames(datagram) -> Buffer[] (copies) or null: DataFrames on a Buffer.
Napi::Value DataFramesJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Buffer<uint8_t> b = info[0].As<Napi::Buffer<uint8_t>>();
  std::vector<Frame> frames;
  if (!DataFrames(b.Data(), b.Length(), frames)) return env.Null();
  Napi::Array out = Napi::Array::New(env, frames.size());
  for (size_t i = 0; i < frames.size(); i++) out.Set(static_cast<uint32_t>(i), Napi::Buffer<uint8_t>::Copy(env, frames[i].data, frames[i].len));
  return out;
}

}  // namespace

void InitExports(Napi::Env env, Napi::Object exports) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("FastPath", FastPath::Init(env));
  o.Set("dataFrames", Napi::Function::New(env, DataFramesJs));
  o.Set("ServerFastPath", ServerFastPath::Init(env));
  o.Set("StreamLink", StreamLink::Init(env));
  exports.Set("fastPath", o);
}

}  // namespace fastpath
}  // namespace ctun
