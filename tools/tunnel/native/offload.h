// The TAP's virtio-net header offloads (IFF_VNET_HDR + TUNSETOFFLOAD), as wireguard-go
// uses them for its TUN: the kernel hands the tunnel TCP super-segments of up to 64 KiB
// with one read and takes them with one write. The wire never sees them: what is read
// is cut here into ordinary frames (checksums completed), so every peer receives what
// a TAP without offloads would have given; what is written is coalesced here from
// consecutive segments of one TCP flow (GRO), or written alone with an empty header.
#pragma once
#include <napi.h>

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <vector>

namespace ctun {
namespace offload {

// struct virtio_net_hdr (no mergeable buffers): what precedes every frame on the fd.
constexpr size_t kVnetHdrSize = 10;

// Turns the TAP's offloads on (TUN_F_CSUM | TSO4 | TSO6) or off (0) on an fd opened
// with IFF_VNET_HDR. False when the kernel refuses; the caller then opens it without.
bool SetOffloads(int fd, bool on);

// Where a reader puts the frames it cut: frame i is data[offsets[i], +lengths[i]).
struct FrameSink {
  uint8_t* data;
  size_t bytes;
  uint32_t* lengths;
  uint32_t* offsets;
  uint32_t capacity;
  uint32_t count = 0;
  size_t used = 0;
};

enum class CutResult { Ok, NoRoom, Dropped };

// One packet read from the TAP (virtio-net header + frame) into ordinary frames: a
// TCP super-segment into gso_size segments, a frame that only needs its checksum
// completed into that frame, anything else as it is. Appends to sink, or NoRoom and
// leaves it unchanged.
CutResult Cut(const uint8_t* packet, size_t len, FrameSink& sink);

// A frame to write: its bytes (an ordinary Ethernet frame, checksums complete).
struct Frame {
  const uint8_t* data;
  size_t len;
};

// One write toward the TAP: iov entries (header, then the frames' pieces) standing
// for `frames` consecutive input frames.
struct Write {
  std::vector<struct iovec> iov;
  uint32_t frames;
};

// Plans the writes for a batch: runs of consecutive segments of one TCP flow become
// one super-segment (a virtio-net header asking for GSO, the first frame's headers
// patched to the run's length), every other frame one write with an empty header.
// `scratch` holds the headers the iovs point at; it must outlive the writes.
std::vector<Write> Coalesce(const Frame* frames, size_t n, std::vector<uint8_t>& scratch);

// Reads packets from a TAP fd opened with IFF_VNET_HDR and cuts them into a sink.
class SegmentingReader {
 public:
  SegmentingReader();
  // Up to maxReads reads (at most kMaxReads), until the sink is full; deliver(count)
  // once or twice. deliver must be done with the frames when it returns (the sink is
  // refilled).
  template <typename Deliver>
  void Drain(int fd, FrameSink& sink, int maxReads, Deliver deliver);
  uint64_t dropped() const { return dropped_; }

 private:
  bool ReadOne(int fd, size_t& len);
  std::vector<uint8_t> scratch_;
  uint64_t dropped_ = 0;
};

constexpr int kMaxReads = 64;

template <typename Deliver>
void SegmentingReader::Drain(int fd, FrameSink& sink, int maxReads, Deliver deliver) {
  sink.count = 0;
  sink.used = 0;
  if (maxReads > kMaxReads) maxReads = kMaxReads;
  for (int reads = 0; reads < maxReads; reads++) {
    size_t len = 0;
    if (!ReadOne(fd, len)) break;
    CutResult r = Cut(scratch_.data(), len, sink);
    if (r == CutResult::NoRoom && sink.count > 0) {
      deliver(sink.count);
      sink.count = 0;
      sink.used = 0;
      r = Cut(scratch_.data(), len, sink);
      if (r != CutResult::Ok) dropped_++;
      // One sink's worth per wake-up: the rest waits in the TAP's queue until the
      // event loop has let the sockets drain (a bounded link queue would drop it).
      break;
    }
    if (r != CutResult::Ok) dropped_++;
  }
  if (sink.count > 0) deliver(sink.count);
}

// segment(packet) and coalesce(frames) for the unit tests: the code above, on Buffers.
void InitExports(Napi::Env env, Napi::Object exports);

}  // namespace offload
}  // namespace ctun
