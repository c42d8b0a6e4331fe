// Busy polling: after a wake-up that moved frames, the event loop checks for the next
// one for a few microseconds before it sleeps. In a co-simulation's lockstep exchange
// the answer to a forwarded frame comes back within tens of microseconds, and going to
// sleep and being woken again (a CPU leaving its idle state, an inter-processor
// interrupt, in a VM a halted vCPU) cost more than the whole wait. The spin yields
// the CPU between checks, so a process that has work (the simulator, the other end)
// runs first.
//
// How long to spin is learned per watcher (each reader and the stream link keep their
// own SpinBudget), much as the kernel's haltpoll cpuidle governor does for a vCPU: a
// wait that outlasted the spin but stayed within the limit sets the budget to the
// limit; a wait beyond the limit halves it, and below an eighth of the limit it
// stops. So a TAP read of a request (whose answer comes soon) keeps its spin, and a
// read of an answer (after which the peer may think for a millisecond, or a steady
// stream with gaps beyond the limit) soon spins not at all.
//
// Everything runs on the event loop thread: no locking.
#pragma once
#include <napi.h>
#include <uv.h>

#include <stdint.h>

namespace ctun {
namespace busypoll {

class SpinBudget {
 public:
  SpinBudget() = default;
  SpinBudget(const SpinBudget&) = delete;
  SpinBudget& operator=(const SpinBudget&) = delete;
  ~SpinBudget();  // forgets this budget if the loop still points at it
  uint64_t Ns() const { return ns_; }
  // waited: from the loop's turn to poll until the next frame woke it.
  void Adapt(uint64_t waited, uint64_t limit);

 private:
  uint64_t ns_ = 0;
};

// A watcher of a tunnel fd woke with something to read; its budget decides the spin
// that follows this turn of the loop.
void Heard(SpinBudget& budget);

void InitExports(Napi::Env env, Napi::Object exports);

}  // namespace busypoll
}  // namespace ctun
