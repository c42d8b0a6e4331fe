// The two system-call paths every data frame takes, as plain C functions on (pointer,
// length) frames: out of a UDP socket (sendmmsg, GSO runs) and into a TAP (write, or
// coalesced writes with virtio-net headers). JavaScript reaches them through udpSend
// and writeFrames (tap.cc); the fast path (fastpath.cc) calls them directly, so both
// move frames with the same code.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "offload.h"

namespace ctun {
namespace datapath {

using Frame = offload::Frame;

// Sends n buffers to ip:port (ip 0: the connected peer), one sendmmsg per 256, runs
// of equal size as one GSO message. header: each buffer is an Ethernet frame and gets
// a 4-byte Data header; otherwise each is a whole datagram. Returns how many left (a
// full socket buffer or an ICMP-reported error ends the batch: the rest are drops),
// or -errno for an error the caller must report.
int64_t SendDatagrams(int fd, const Frame* list, uint32_t n, uint32_t ip, uint32_t port, bool header);

// Writes n frames to a TAP fd; offload: the fd has virtio-net headers and the batch is
// coalesced (offload.h). Returns how many were written (a full queue ends the batch),
// or -errno for an error the caller must report.
int64_t WriteTap(int fd, const Frame* list, uint32_t n, bool offload);

// Whether sends on fd may use GSO (udpOpen says; a refused GSO send turns it off).
void AllowGso(int fd, bool allowed);
// The fd was closed: a reused number starts afresh.
void Forget(int fd);

}  // namespace datapath
}  // namespace ctun
