#include "busy_poll.h"

#include <poll.h>
#include <sched.h>

namespace ctun {
namespace busypoll {

namespace {

// A budget halved below an eighth of the limit is spent: it stops.
constexpr uint64_t kFloorDivisor = 8;

struct Spinner {
  uv_prepare_t* prepare = nullptr;
  uint64_t limitNs = 0;
  SpinBudget* woke = nullptr;     // the watcher that woke this turn, last of them
  SpinBudget* waiting = nullptr;  // whose wait is being timed
  uint64_t waitStart = 0;
  // What the spins cost: how many, how many a frame ended, their time, and the time of
  // those that ran out (spent for nothing).
  double spins = 0, caught = 0, spunNs = 0, missedNs = 0;
};

Spinner spinner;

// Runs right before the loop polls (and would sleep): spin on the loop's own epoll fd,
// which is readable as soon as any watched fd is, so libuv's poll then returns at once.
void OnPrepare(uv_prepare_t* handle) {
  SpinBudget* budget = spinner.woke;
  spinner.woke = nullptr;
  if (budget == nullptr) return;  // a turn for timers or JavaScript's own sockets
  uint64_t now = uv_hrtime();
  spinner.waiting = budget;
  spinner.waitStart = now;
  uint64_t spin = budget->Ns() < spinner.limitNs ? budget->Ns() : spinner.limitNs;
  if (spin == 0) return;
  struct pollfd loopFd = {uv_backend_fd(handle->loop), POLLIN, 0};
  uint64_t end = now + spin;
  spinner.spins++;
  uint64_t t = now;
  do {
    if (poll(&loopFd, 1, 0) > 0) {
      spinner.caught++;
      spinner.spunNs += static_cast<double>(uv_hrtime() - now);
      return;
    }
    sched_yield();
    t = uv_hrtime();
  } while (t < end);
  spinner.spunNs += static_cast<double>(t - now);
  spinner.missedNs += static_cast<double>(t - now);
}

// busyPollStats(): the spins so far (process-wide), for the stats line.
Napi::Value Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("spins", spinner.spins);
  o.Set("caught", spinner.caught);
  o.Set("spunUs", spinner.spunNs / 1000);
  o.Set("missedUs", spinner.missedNs / 1000);
  return o;
}

// busyPoll(limitMicroseconds): 0 stops spinning.
Napi::Value Configure(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double micros = info[0].As<Napi::Number>().DoubleValue();
  if (!(micros >= 0)) {
    Napi::RangeError::New(env, "busy-poll limit must be 0 or more microseconds").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  spinner.limitNs = static_cast<uint64_t>(micros * 1000);
  if (spinner.limitNs > 0 && spinner.prepare == nullptr) {
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    spinner.prepare = new uv_prepare_t;
    uv_prepare_init(loop, spinner.prepare);
    uv_prepare_start(spinner.prepare, OnPrepare);
    uv_unref(reinterpret_cast<uv_handle_t*>(spinner.prepare));  // never keeps the process alive
  } else if (spinner.limitNs == 0 && spinner.prepare != nullptr) {
    uv_prepare_stop(spinner.prepare);
    uv_close(reinterpret_cast<uv_handle_t*>(spinner.prepare), [](uv_handle_t* h) { delete reinterpret_cast<uv_prepare_t*>(h); });
    spinner.prepare = nullptr;
  }
  spinner.woke = spinner.waiting = nullptr;
  return env.Undefined();
}

}  // namespace

SpinBudget::~SpinBudget() {
  if (spinner.woke == this) spinner.woke = nullptr;
  if (spinner.waiting == this) spinner.waiting = nullptr;
}

void SpinBudget::Adapt(uint64_t waited, uint64_t limit) {
  if (waited > limit) {
    ns_ /= 2;
    if (ns_ < limit / kFloorDivisor) ns_ = 0;
  } else if (waited > ns_) {
    // A spin of the whole limit would have caught it. (haltpoll doubles from a start
    // instead; on a co-simulation's waits each doubling cost a spin that missed.)
    ns_ = limit;
  }
}

void Heard(SpinBudget& budget) {
  if (spinner.limitNs == 0) return;
  if (spinner.waiting != nullptr) {
    spinner.waiting->Adapt(uv_hrtime() - spinner.waitStart, spinner.limitNs);
    spinner.waiting = nullptr;
  }
  spinner.woke = &budget;
}

void InitExports(Napi::Env env, Napi::Object exports) {
  exports.Set("busyPoll", Napi::Function::New(env, Configure));
  exports.Set("busyPollStats", Napi::Function::New(env, Stats));
}

}  // namespace busypoll
}  // namespace ctun
