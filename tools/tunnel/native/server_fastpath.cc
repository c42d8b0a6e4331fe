// See server_fastpath.h.
#include "server_fastpath.h"

#include "stream_link.h"
#include "wire.h"

namespace ctun {
namespace fastpath {

namespace {

constexpr size_t kEthernetHeader = 14;
constexpr size_t kIpv4DestinationEnd = 34;  // Ethernet + IPv4 header up to its destination

uint64_t MacAt(const uint8_t* p) {
  uint64_t m = 0;
  for (int i = 0; i < 6; i++) m = (m << 8) | p[i];
  return m;
}

bool Multicast(const uint8_t* mac) { return (mac[0] & 1) != 0; }

double MsSince(int64_t ns, int64_t now) { return ns < 0 ? -1.0 : static_cast<double>(now - ns) / 1e6; }

}  // namespace

Napi::FunctionReference ServerFastPath::constructor;

Napi::Function ServerFastPath::Init(Napi::Env env) {
  Napi::Function f = DefineClass(env, "ServerFastPath",
                                 {InstanceMethod("setPeer", &ServerFastPath::SetPeer), InstanceMethod("removePeer", &ServerFastPath::RemovePeer),
                                  InstanceMethod("learn", &ServerFastPath::Learn), InstanceMethod("forget", &ServerFastPath::Forget),
                                  InstanceMethod("counters", &ServerFastPath::Counters), InstanceMethod("close", &ServerFastPath::Close)});
  constructor = Napi::Persistent(f);
  constructor.SuppressDestruct();
  return f;
}

ServerFastPath::ServerFastPath(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ServerFastPath>(info) {
  tapFd_ = info[0].As<Napi::Number>().Int32Value();
  tapOffload_ = info[1].As<Napi::Boolean>().Value();
  udpFd_ = info[2].As<Napi::Number>().Int32Value();
  tapMac_ = static_cast<uint64_t>(info[3].As<Napi::Number>().Int64Value());
  separate_ = info[4].As<Napi::Boolean>().Value();
  serverIp_ = info[5].As<Napi::Number>().Uint32Value();
}

uint32_t ServerFastPath::FromTap(const Frame* frames, uint32_t n, uint32_t* rest) {
  uint32_t left = 0;
  Peer* runPeer = nullptr;
  // Consecutive frames to one client leave in one sendmmsg (GSO runs included).
  auto sendRun = [&]() {
    uint32_t k = static_cast<uint32_t>(run_.size());
    if (k == 0) return;
    tapIn_.Count(run_.data(), k, k);
    if (runPeer->stream != nullptr) runPeer->stream->SendFrames(run_.data(), k, runPeer->out);
    else if (runPeer->sealer != nullptr) SendSealed(udpFd_, *runPeer->sealer, run_.data(), k, runPeer->ip, runPeer->port, runPeer->out, sealScratch_, sealedList_);
    else SendFrames(udpFd_, run_.data(), k, runPeer->ip, runPeer->port, runPeer->out);
    run_.clear();
  };
  for (uint32_t i = 0; i < n; i++) {
    const Frame& f = frames[i];
    Peer* peer = nullptr;
    // Only the TAP's own frames (its MAC is pinned in the switch: nothing to learn)
    // to a client MAC: a frame from another MAC teaches the switch something.
    if (f.len >= kEthernetHeader && !Multicast(f.data) && MacAt(f.data + 6) == tapMac_) {
      auto mac = macs_.find(MacAt(f.data));
      if (mac != macs_.end()) {
        auto p = peers_.find(mac->second.peer);
        if (p != peers_.end() && p->second.ip != 0) peer = &p->second;
      }
    }
    if (peer == nullptr) {
      rest[left++] = i;
      continue;
    }
    if (peer != runPeer) sendRun();
    runPeer = peer;
    run_.push_back(f);
  }
  sendRun();
  return left;
}

bool ServerFastPath::Admits(const Frame& f, uint32_t id, const Peer& peer, int64_t now) {
  if (f.len < kEthernetHeader || MacAt(f.data) != tapMac_ || Multicast(f.data + 6)) return false;
  auto mac = macs_.find(MacAt(f.data + 6));
  if (mac == macs_.end() || mac->second.peer != id) return false;
  if (separate_) {
    // IPv4 to the server or the admitted destination only; ARP, IPv6 and the rest
    // take the policy in admission.ts.
    if (f.len < kIpv4DestinationEnd || f.data[12] != 0x08 || f.data[13] != 0x00) return false;
    const uint8_t* d = f.data + 30;
    uint32_t dst = (static_cast<uint32_t>(d[0]) << 24) | (static_cast<uint32_t>(d[1]) << 16) | (static_cast<uint32_t>(d[2]) << 8) | d[3];
    if (dst != serverIp_ && (peer.destIp == 0 || dst != peer.destIp)) return false;
  }
  mac->second.seenNs = now;
  return true;
}

bool ServerFastPath::FromSealed(uint8_t* d, uint32_t len, uint32_t ip, uint32_t port) {
  if (len < wire::kSealedHeaderSize) return false;
  uint32_t keyId = aead::KeyIdOf(d);
  auto k = byKey_.find(keyId);
  if (k == byKey_.end()) return false;
  auto p = peers_.find(k->second);
  if (p == peers_.end() || p->second.sealer == nullptr || p->second.ip != ip || p->second.port != port) return false;
  Peer& peer = p->second;
  size_t first = pending_.size();
  Sealer::Opened opened;
  if (!OpenData(*peer.sealer, d, len, pending_, opened)) return false;
  int64_t now = NowNs();
  for (size_t i = first; i < pending_.size(); i++) {
    if (!Admits(pending_[i], k->second, peer, now)) {
      pending_.resize(first);
      peer.sealer->Restore(d, len, opened);
      return false;
    }
  }
  peer.sealer->Accept(opened);
  peer.heardNs = now;
  uint32_t taken = static_cast<uint32_t>(pending_.size() - first);
  peer.in.Count(pending_.data() + first, taken, taken);
  return true;
}

bool ServerFastPath::FromUdp(uint8_t* d, uint32_t len, uint32_t ip, uint32_t port) {
  if (len > 0 && d[0] == wire::kSealedMarker) return FromSealed(d, len, ip, port);
  // Plain: only a plain peer's address is bound; a sealed session's never is.
  auto a = byAddr_.find(AddrKey(ip, port));
  if (a == byAddr_.end()) return false;
  auto p = peers_.find(a->second);
  if (p == peers_.end()) return false;
  size_t first = pending_.size();
  if (!DataFrames(d, len, pending_)) return false;
  int64_t now = NowNs();
  for (size_t i = first; i < pending_.size(); i++) {
    if (!Admits(pending_[i], a->second, p->second, now)) {
      pending_.resize(first);
      return false;
    }
  }
  Peer& peer = p->second;
  peer.heardNs = now;
  uint32_t taken = static_cast<uint32_t>(pending_.size() - first);
  peer.in.Count(pending_.data() + first, taken, taken);
  return true;
}

void ServerFastPath::Flush() { FlushToTap(tapFd_, tapOffload_, pending_, tapOut_); }

void ServerFastPath::Unbind(uint32_t id, const Peer& peer) {
  if (peer.sealer != nullptr) {
    auto k = byKey_.find(peer.sealer->keyId());
    if (k != byKey_.end() && k->second == id) byKey_.erase(k);
    return;
  }
  if (peer.ip == 0) return;
  auto a = byAddr_.find(AddrKey(peer.ip, peer.port));
  // A newer session on the same address owns it now: leave that binding alone.
  if (a != byAddr_.end() && a->second == id) byAddr_.erase(a);
}

Napi::Value ServerFastPath::SetPeer(const Napi::CallbackInfo& info) {
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  uint32_t ip = info[1].As<Napi::Number>().Uint32Value();
  uint32_t port = info[2].As<Napi::Number>().Uint32Value();
  Peer& peer = peers_[id];
  Unbind(id, peer);
  peer.ip = ip;
  peer.port = ip == 0 ? 0 : port;
  peer.destIp = info[3].As<Napi::Number>().Uint32Value();
  peer.stream = info.Length() > 4 && ip != 0 ? StreamLinkOf(info[4]) : nullptr;
  if (peer.stream != nullptr) streams_[id] = Napi::Persistent(info[4].As<Napi::Object>());
  else streams_.erase(id);
  peer.sealer = info.Length() > 5 && ip != 0 ? SealerOf(info[5]) : nullptr;
  if (peer.sealer != nullptr) {
    sealers_[id] = Napi::Persistent(info[5].As<Napi::Object>());
    byKey_[peer.sealer->keyId()] = id;
  } else {
    sealers_.erase(id);
    // The newest session on an address owns it (a client that restarted on the same port).
    if (ip != 0) byAddr_[AddrKey(ip, port)] = id;
  }
  return info.Env().Undefined();
}

Napi::Value ServerFastPath::RemovePeer(const Napi::CallbackInfo& info) {
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  auto p = peers_.find(id);
  if (p != peers_.end()) {
    Unbind(id, p->second);
    peers_.erase(p);
  }
  streams_.erase(id);
  sealers_.erase(id);
  for (auto m = macs_.begin(); m != macs_.end();) m = m->second.peer == id ? macs_.erase(m) : std::next(m);
  return info.Env().Undefined();
}

Napi::Value ServerFastPath::Learn(const Napi::CallbackInfo& info) {
  uint64_t mac = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
  uint32_t id = info[1].As<Napi::Number>().Uint32Value();
  auto m = macs_.find(mac);
  if (m == macs_.end() || m->second.peer != id) macs_[mac] = {id, -1};
  return info.Env().Undefined();
}

Napi::Value ServerFastPath::Forget(const Napi::CallbackInfo& info) {
  macs_.erase(static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()));
  return info.Env().Undefined();
}

Napi::Value ServerFastPath::Counters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t now = NowNs();
  Napi::Array a = Napi::Array::New(env, 7 + peers_.size() * 7 + macs_.size() * 2);
  uint32_t i = 0;
  for (double v : {tapIn_.frames, tapIn_.bytes, tapOut_.frames, tapOut_.bytes, tapOut_.drops}) a.Set(i++, v);
  a.Set(i++, static_cast<double>(peers_.size()));
  for (const auto& [id, p] : peers_) {
    for (double v : {static_cast<double>(id), p.in.frames, p.in.bytes, p.out.frames, p.out.bytes, p.out.drops, MsSince(p.heardNs, now)}) a.Set(i++, v);
  }
  a.Set(i++, static_cast<double>(macs_.size()));
  for (const auto& [mac, m] : macs_) {
    a.Set(i++, static_cast<double>(mac));
    a.Set(i++, MsSince(m.seenNs, now));
  }
  return a;
}

Napi::Value ServerFastPath::Close(const Napi::CallbackInfo& info) {
  active_ = false;
  pending_.clear();
  for (auto& [id, p] : peers_) {
    p.stream = nullptr;
    p.sealer = nullptr;
  }
  streams_.clear();
  sealers_.clear();
  byKey_.clear();
  return info.Env().Undefined();
}

}  // namespace fastpath
}  // namespace ctun
