// The data fast path: frames that need no decision of the control plane move between
// the TAP and the UDP socket inside the addon, without waking JavaScript. A request/
// response round trip crosses each end twice; entering JavaScript for each lone frame
// (callback, decode, batch, send) costs CPU each time (README, Speed: what it saved).
//
// Client mode (the only one so far): every frame read from the TAP leaves as a Data
// datagram to the server, and a datagram from the server that is Data messages only
// is written to the TAP. Anything else (a ping, a welcome, a mixed datagram) goes to
// JavaScript as before. JavaScript creates the path once the session is up and closes
// it the moment it is not; it reads the counters for the statistics and liveness.
// Everything here runs on the event loop thread (uv_poll): no locking.
#pragma once
#include <napi.h>

#include <stdint.h>

#include <vector>

#include "datapath.h"

namespace ctun {
namespace fastpath {

using Frame = datapath::Frame;

// The frames of a datagram that is a chain of whole Data messages and nothing else,
// appended to `out`; false (out unchanged) for anything else.
bool DataFrames(const uint8_t* d, size_t len, std::vector<Frame>& out);

class FastPath : public Napi::ObjectWrap<FastPath> {
 public:
  static Napi::Function Init(Napi::Env env);

  // new FastPath(tapFd, tapOffload, udpFd): the client's TAP and its connected socket.
  explicit FastPath(const Napi::CallbackInfo& info);

  bool active() const { return active_; }
  // Frames read from the TAP: all leave for the server (a full socket drops the rest).
  void FromTap(const Frame* frames, uint32_t n);
  // One datagram from the socket: true when it was Data only and is queued for the
  // TAP (until Flush), false when JavaScript must have it.
  bool FromUdp(const uint8_t* d, uint32_t len);
  // Writes what FromUdp queued; the reader calls it before it reuses its buffer.
  void Flush();

 private:
  // counters() -> [framesOut, bytesOut, dropsOut, framesIn, bytesIn, dropsIn, msSinceHeard]
  // (msSinceHeard -1: nothing heard yet). Cumulative; JavaScript adds the differences.
  Napi::Value Counters(const Napi::CallbackInfo& info);
  // close(): forwards nothing from now on; the readers hand everything to JavaScript.
  Napi::Value Close(const Napi::CallbackInfo& info);

  int tapFd_;
  bool tapOffload_;
  int udpFd_;
  bool active_ = true;
  std::vector<Frame> pending_;
  double framesOut_ = 0, bytesOut_ = 0, dropsOut_ = 0;
  double framesIn_ = 0, bytesIn_ = 0, dropsIn_ = 0;
  int64_t heardNs_ = -1;
};

// FastPath class and dataFrames(datagram) for the unit tests, as `fastPath` on exports.
void InitExports(Napi::Env env, Napi::Object exports);

}  // namespace fastpath
}  // namespace ctun
