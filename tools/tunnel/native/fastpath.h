// The data fast path: frames that need no decision of the control plane move between
// the TAP and the UDP socket (or a plain TCP connection the addon drives for it,
// stream_link.h) inside the addon, without waking JavaScript. A request/
// response round trip crosses each end twice; entering JavaScript for each lone frame
// (callback, decode, batch, send) costs CPU each time (README, Speed: what it saved).
//
// Two forwarders share the readers' hook (Forwarder below):
// - the client's FastPath (here): every frame read from the TAP leaves as a Data
//   datagram to the server, and a datagram from the server that is Data messages only
//   is written to the TAP. Anything else (a ping, a welcome, a mixed datagram) goes to
//   JavaScript as before. JavaScript creates the path once the session is up and closes
//   it the moment it is not; it reads the counters for the statistics and liveness.
// - the server's ServerFastPath (server_fastpath.h): per-session entries that the
//   control plane keeps in step with its switch.
// Everything here runs on the event loop thread (uv_poll): no locking.
#pragma once
#include <napi.h>

#include <stdint.h>

#include <vector>

#include "datapath.h"
#include "sealer.h"

namespace ctun {
namespace fastpath {

using Frame = datapath::Frame;

// The frames of a datagram that is a chain of whole Data messages and nothing else,
// appended to `out`; false (out unchanged) for anything else.
bool DataFrames(const uint8_t* d, size_t len, std::vector<Frame>& out);

// The monotonic clock in nanoseconds (when a peer was last heard).
int64_t NowNs();

// What one direction moved, cumulative, as the counters report it.
struct Tally {
  double frames = 0, bytes = 0, drops = 0;
  // `done` of the n frames went (a negative result is an error JavaScript would
  // throw on: the whole batch counts as drops).
  void Count(const Frame* list, uint32_t n, int64_t done);
};

// Sends n frames as Data datagrams to ip:port (ip 0: the connected peer), tallied.
void SendFrames(int udpFd, const Frame* list, uint32_t n, uint32_t ip, uint32_t port, Tally& tally);
// The same sealed (--tls UDP): each frame a datagram under the session's sealer, built
// in `scratch`. Frames the sealer cannot seal (no key, counter exhausted) are drops.
void SendSealed(int udpFd, Sealer& sealer, const Frame* list, uint32_t n, uint32_t ip, uint32_t port, Tally& tally, std::vector<uint8_t>& scratch,
                std::vector<Frame>& sealed);
// A sealed datagram whose plaintext is Data messages only: opened in place and its
// frames appended to `out`, true; the caller then takes it (sealer.Accept(opened)) or
// gives it back (sealer.Restore). Else false, the bytes as they came and nothing
// marked seen: JavaScript opens it again and counts why it failed.
bool OpenData(Sealer& sealer, uint8_t* d, size_t len, std::vector<Frame>& out, Sealer::Opened& opened);
// Writes the queued frames to the TAP, tallied, and empties the queue.
void FlushToTap(int tapFd, bool offload, std::vector<Frame>& pending, Tally& tally);

// What a reader hands each wake-up to before JavaScript sees what is left.
class Forwarder {
 public:
  virtual ~Forwarder() = default;
  virtual bool active() const = 0;
  // Frames read from the TAP. Returns how many JavaScript must still have, their
  // indexes written to `rest` in ascending order (rest holds n).
  virtual uint32_t FromTap(const Frame* frames, uint32_t n, uint32_t* rest) = 0;
  // One datagram from the socket, from ip:port (host order), or one message that a
  // stream link (stream_link.h) read from its peer: true when it was taken (its frames
  // queued for the TAP until Flush), false when JavaScript must have it as it came. A
  // sealed datagram is opened in place, so the bytes are the forwarder's to change.
  virtual bool FromUdp(uint8_t* d, uint32_t len, uint32_t ip, uint32_t port) = 0;
  // Writes what FromUdp queued; the reader calls it before it reuses its buffer.
  virtual void Flush() = 0;
};

// The forwarder a JavaScript object wraps (a FastPath or a ServerFastPath), or nullptr.
Forwarder* ForwarderOf(Napi::Object object);

// The forwarder a reader (tap.cc's, or a stream link) hands its wake-ups to:
// attach(path | undefined) from JavaScript, the path kept alive while attached.
class AttachedForwarder {
 public:
  void Set(const Napi::Value& path) {
    if (path.IsObject()) {
      fast_ = ForwarderOf(path.As<Napi::Object>());
      ref_ = Napi::Persistent(path.As<Napi::Object>());
    } else {
      Clear();
    }
  }
  void Clear() {
    fast_ = nullptr;
    ref_.Reset();
  }
  // The attached path while it forwards, else nullptr.
  Forwarder* Active() const { return fast_ != nullptr && fast_->active() ? fast_ : nullptr; }

 private:
  Forwarder* fast_ = nullptr;
  Napi::ObjectReference ref_;
};

class StreamLink;

class FastPath : public Napi::ObjectWrap<FastPath>, public Forwarder {
 public:
  static Napi::Function Init(Napi::Env env);

  // new FastPath(tapFd, tapOffload, udpFd, stream?, sealer?): the client's TAP and its
  // connected UDP socket, or (plain TCP) the stream link of its connection (udpFd
  // unused); with --tls over UDP, the session's sealer (sealer.h).
  explicit FastPath(const Napi::CallbackInfo& info);

  static Napi::FunctionReference constructor;

  bool active() const override { return active_; }
  // Frames read from the TAP: all leave for the server (a full socket drops the rest).
  uint32_t FromTap(const Frame* frames, uint32_t n, uint32_t* rest) override;
  // A datagram on the connected socket (the server's): taken when it is Data only.
  bool FromUdp(uint8_t* d, uint32_t len, uint32_t ip, uint32_t port) override;
  void Flush() override;

 private:
  // counters() -> [framesOut, bytesOut, dropsOut, framesIn, bytesIn, dropsIn, msSinceHeard]
  // (msSinceHeard -1: nothing heard yet). Cumulative; JavaScript adds the differences.
  Napi::Value Counters(const Napi::CallbackInfo& info);
  // close(): forwards nothing from now on; the readers hand everything to JavaScript.
  Napi::Value Close(const Napi::CallbackInfo& info);

  int tapFd_;
  bool tapOffload_;
  int udpFd_;
  StreamLink* stream_ = nullptr;
  Napi::ObjectReference streamRef_;
  Sealer* sealer_ = nullptr;
  Napi::ObjectReference sealerRef_;
  std::vector<uint8_t> sealScratch_;
  std::vector<Frame> sealedList_;
  bool active_ = true;
  std::vector<Frame> pending_;
  Tally out_, in_;
  int64_t heardNs_ = -1;
};

// FastPath class and dataFrames(datagram) for the unit tests, as `fastPath` on exports.
void InitExports(Napi::Env env, Napi::Object exports);

}  // namespace fastpath
}  // namespace ctun
