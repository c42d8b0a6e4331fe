// The server's half of the data fast path (fastpath.h): the frames of a request/
// response round trip between a client and the simulator beside the server's TAP
// cross the server without waking JavaScript, as they cross the client.
//
// The control plane stays in TypeScript and decides everything; this keeps a copy of
// what it decided, and forwards only what its switch would forward the same way:
// - peers: one entry per session, with the address its link has now (none while the
//   session is detached) and, in separate mode, its admitted IPv4 destination;
// - MACs: which session the switch learned each client MAC behind (kept in step by
//   the switch's own change events).
// From a peer, a datagram of Data messages only is taken when every frame is unicast
// to the server's TAP MAC from a MAC learned behind that peer (and, in separate mode,
// IPv4 to the server or the session's destination); from the TAP, a frame is taken
// when it is from the TAP's MAC to a MAC learned behind an attached peer. Everything
// else (broadcast, ARP to another client, a new or moved MAC, a frame policy would
// drop, control messages) goes to JavaScript, whose switch and policy decide as before.
#pragma once
#include <napi.h>

#include <stdint.h>

#include <unordered_map>
#include <vector>

#include "fastpath.h"

namespace ctun {
namespace fastpath {

class ServerFastPath : public Napi::ObjectWrap<ServerFastPath>, public Forwarder {
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::FunctionReference constructor;

  // new ServerFastPath(tapFd, tapOffload, udpFd, tapMac: number, separate: boolean, serverIp: number)
  explicit ServerFastPath(const Napi::CallbackInfo& info);

  bool active() const override { return active_; }
  uint32_t FromTap(const Frame* frames, uint32_t n, uint32_t* rest) override;
  bool FromUdp(uint8_t* d, uint32_t len, uint32_t ip, uint32_t port) override;
  void Flush() override;

 private:
  struct Peer {
    uint32_t ip = 0;  // 0: detached, nothing is sent to it natively
    uint32_t port = 0;
    uint32_t destIp = 0;  // separate mode: the admitted IPv4 --dest (0: none)
    StreamLink* stream = nullptr;  // plain TCP: the connection's stream link (else UDP to ip:port)
    Sealer* sealer = nullptr;  // --tls UDP: the session's keys; found by key id, never by address
    Tally in, out;  // from the client (no drops: the TAP's are tapOut_), to it
    int64_t heardNs = -1;
  };
  struct Mac {
    uint32_t peer;
    int64_t seenNs;  // -1: not seen by this path yet
  };

  // setPeer(id, ip, port, destIp, stream?, sealer?): the session's link address now (ip
  // 0: detached) and, on plain TCP, the stream link its frames are written to; with
  // --tls over UDP, its sealer: its datagrams are found by key id and must come from
  // that address (a client that moved goes to JavaScript, which follows it).
  Napi::Value SetPeer(const Napi::CallbackInfo& info);
  // removePeer(id): the session ended; its MACs go too.
  Napi::Value RemovePeer(const Napi::CallbackInfo& info);
  // learn(mac, id) / forget(mac): the switch put a MAC behind a session / anywhere else.
  Napi::Value Learn(const Napi::CallbackInfo& info);
  Napi::Value Forget(const Napi::CallbackInfo& info);
  // counters() -> [tapFramesIn, tapBytesIn, tapFramesOut, tapBytesOut, tapDropsOut,
  //   peers, (id, framesIn, bytesIn, framesOut, bytesOut, dropsOut, msSinceHeard) x peers,
  //   macs, (mac, msSinceSeen) x macs]; cumulative, -1 for never.
  Napi::Value Counters(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  // Whether one frame from `peer` may go to the TAP natively.
  bool Admits(const Frame& f, uint32_t id, const Peer& peer, int64_t now);
  // A sealed datagram from ip:port: taken when its peer is there and it opens as frames all admitted.
  bool FromSealed(uint8_t* d, uint32_t len, uint32_t ip, uint32_t port);
  // Drops the address (or key) binding of `peer` (session `id`), unless another session holds it.
  void Unbind(uint32_t id, const Peer& peer);
  static uint64_t AddrKey(uint32_t ip, uint32_t port) { return (static_cast<uint64_t>(ip) << 16) | port; }

  int tapFd_;
  bool tapOffload_;
  int udpFd_;
  uint64_t tapMac_;
  bool separate_;
  uint32_t serverIp_;
  bool active_ = true;
  std::unordered_map<uint32_t, Peer> peers_;
  std::unordered_map<uint32_t, Napi::ObjectReference> streams_;  // keeps each peer's stream link alive
  std::unordered_map<uint32_t, Napi::ObjectReference> sealers_;  // keeps each peer's sealer alive
  std::unordered_map<uint64_t, uint32_t> byAddr_;  // plain UDP peers only
  std::unordered_map<uint32_t, uint32_t> byKey_;  // sealed peers: key id -> peer
  std::vector<uint8_t> sealScratch_;
  std::vector<Frame> sealedList_;
  std::unordered_map<uint64_t, Mac> macs_;
  std::vector<Frame> pending_;
  std::vector<Frame> run_;
  Tally tapIn_, tapOut_;  // frames read from the TAP and taken here; frames written to it
};

}  // namespace fastpath
}  // namespace ctun
