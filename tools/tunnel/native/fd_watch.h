// Watching an fd on Node's event loop (uv_poll: no thread), shared by the readers
// (tap.cc) and the stream link (stream_link.cc).
#pragma once
#include <node_api.h>
#include <uv.h>

namespace ctun {

// A started watch of fd for `events`, handle->data = data; nullptr if libuv refused
// the fd (the caller reports it).
inline uv_poll_t* WatchFd(napi_env env, int fd, void* data, int events, uv_poll_cb callback) {
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  uv_poll_t* poll = new uv_poll_t;
  poll->data = data;
  if (uv_poll_init(loop, poll, fd) != 0) {
    delete poll;
    return nullptr;
  }
  uv_poll_start(poll, events, callback);
  return poll;
}

// Stops the watch and frees its handle once libuv lets go of it; poll becomes nullptr.
inline void Unwatch(uv_poll_t*& poll) {
  if (poll == nullptr) return;
  uv_poll_stop(poll);
  uv_close(reinterpret_cast<uv_handle_t*>(poll), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
  poll = nullptr;
}

// How many reads a TAP reader's wake-up makes. A lone frame (a co-simulation step's
// request or answer) cost a read that took it and a second that found the queue
// empty: one system call of the eight each tunnel end spent per round trip. So a
// wake-up after the event loop slept reads once: the loop slept because nothing was
// readable, so whatever waits arrived since, and if more than one frame did, the
// level-triggered poll reports the fd again at once and that wake-up, without a sleep
// in between, drains up to `most`. The loop's idle time (libuv's metrics, which Node
// turns on) tells whether it slept; where it is not kept it never grows, and every
// wake-up drains as before.
class ReadBudget {
 public:
  int Next(uv_loop_t* loop, int most) {
    uint64_t idle = uv_metrics_idle_time(loop);
    bool slept = idle != lastIdle_;
    lastIdle_ = idle;
    return slept ? 1 : most;
  }

 private:
  uint64_t lastIdle_ = 0;
};

}  // namespace ctun
