// The TAP offloads (see offload.h): cutting super-segments read from the TAP into
// ordinary frames, and coalescing frames written to it into super-segments.
#include <sys/uio.h>

#include "offload.h"

#include <errno.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

namespace ctun {
namespace offload {

namespace {

// From linux/virtio_net.h, which C++ cannot include (a field named `class`).
constexpr uint8_t VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
constexpr uint8_t VIRTIO_NET_HDR_GSO_NONE = 0;
constexpr uint8_t VIRTIO_NET_HDR_GSO_TCPV4 = 1;
constexpr uint8_t VIRTIO_NET_HDR_GSO_TCPV6 = 4;
constexpr uint8_t VIRTIO_NET_HDR_GSO_ECN = 0x80;
struct virtio_net_hdr {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
};
static_assert(sizeof(virtio_net_hdr) == kVnetHdrSize, "the legacy virtio-net header is 10 bytes");

constexpr size_t kEthHeader = 14;
constexpr uint16_t kEtherIPv4 = 0x0800;
constexpr uint16_t kEtherIPv6 = 0x86DD;
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kTcpFin = 0x01;
constexpr uint8_t kTcpPsh = 0x08;
constexpr uint8_t kTcpAck = 0x10;
constexpr uint8_t kTcpCwr = 0x80;
constexpr size_t kTcpChecksumOffset = 16;
constexpr size_t kUdpChecksumOffset = 6;
// The largest IP packet (IPv4 total length, IPv6 payload length: 16 bits).
constexpr size_t kMaxIpLength = 65535;
// A read holds the header and an IP packet of at most 64 KiB behind its Ethernet header.
constexpr size_t kReadBytes = kVnetHdrSize + kEthHeader + kMaxIpLength + 64;

uint16_t Get16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
uint32_t Get32(const uint8_t* p) { return (static_cast<uint32_t>(Get16(p)) << 16) | Get16(p + 2); }
void Put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
void Put32(uint8_t* p, uint32_t v) {
  Put16(p, static_cast<uint16_t>(v >> 16));
  Put16(p + 2, static_cast<uint16_t>(v));
}

// The Internet checksum's one's-complement sum, unfolded.
uint64_t Sum(const uint8_t* d, size_t n, uint64_t acc = 0) {
  size_t i = 0;
  for (; i + 1 < n; i += 2) acc += Get16(d + i);
  if (i < n) acc += static_cast<uint64_t>(d[i]) << 8;
  return acc;
}
uint16_t Fold(uint64_t acc) {
  while (acc >> 16) acc = (acc & 0xFFFF) + (acc >> 16);
  return static_cast<uint16_t>(acc);
}

// The parts of an Ethernet frame carrying TCP over IPv4 or IPv6 (no extension headers).
struct Tcp {
  bool v6;
  size_t ip;       // offset of the IP header
  size_t ipLen;    // its length
  size_t tcp;      // offset of the TCP header
  size_t tcpLen;   // its length
  size_t payload;  // bytes after it
};

bool ParseTcp(const uint8_t* f, size_t len, Tcp& t) {
  if (len < kEthHeader + 20) return false;
  uint16_t type = Get16(f + 12);
  t.ip = kEthHeader;
  if (type == kEtherIPv4) {
    t.v6 = false;
    if ((f[t.ip] >> 4) != 4) return false;
    t.ipLen = static_cast<size_t>(f[t.ip] & 0x0F) * 4;
    if (t.ipLen < 20 || f[t.ip + 9] != kProtoTcp) return false;
    // A fragment is not a segment.
    if ((Get16(f + t.ip + 6) & 0x3FFF) != 0) return false;
    if (Get16(f + t.ip + 2) != len - t.ip) return false;
  } else if (type == kEtherIPv6) {
    t.v6 = true;
    t.ipLen = 40;
    if (len < t.ip + 40 || (f[t.ip] >> 4) != 6 || f[t.ip + 6] != kProtoTcp) return false;
    if (Get16(f + t.ip + 4) != len - t.ip - 40) return false;
  } else {
    return false;
  }
  t.tcp = t.ip + t.ipLen;
  if (len < t.tcp + 20) return false;
  t.tcpLen = static_cast<size_t>(f[t.tcp + 12] >> 4) * 4;
  if (t.tcpLen < 20 || len < t.tcp + t.tcpLen) return false;
  t.payload = len - t.tcp - t.tcpLen;
  return true;
}

// The pseudo-header's sum for a TCP segment of `l4len` bytes.
uint64_t PseudoSum(const uint8_t* f, const Tcp& t, size_t l4len) {
  uint64_t acc = t.v6 ? Sum(f + t.ip + 8, 32) : Sum(f + t.ip + 12, 8);
  return acc + kProtoTcp + l4len;
}

void SetIpv4Checksum(uint8_t* f, const Tcp& t) {
  Put16(f + t.ip + 10, 0);
  Put16(f + t.ip + 10, static_cast<uint16_t>(~Fold(Sum(f + t.ip, t.ipLen))));
}

// Completes the checksum the kernel left partial: the field holds the pseudo-header's
// sum, so the complemented sum from csum_start to the end is the checksum.
bool CompleteChecksum(uint8_t* f, size_t len, size_t start, size_t offset) {
  if (start + offset + 2 > len) return false;
  uint16_t c = static_cast<uint16_t>(~Fold(Sum(f + start, len - start)));
  // UDP sends a computed zero as all ones (zero means "no checksum").
  if (c == 0 && offset == kUdpChecksumOffset) c = 0xFFFF;
  Put16(f + start + offset, c);
  return true;
}

bool Reserve(FrameSink& sink, size_t bytes, uint32_t frames) {
  return sink.count + frames <= sink.capacity && sink.used + bytes <= sink.bytes;
}

uint8_t* Append(FrameSink& sink, size_t len) {
  uint8_t* p = sink.data + sink.used;
  sink.offsets[sink.count] = static_cast<uint32_t>(sink.used);
  sink.lengths[sink.count] = static_cast<uint32_t>(len);
  sink.count++;
  // Frames start 8-byte aligned in the shared buffer.
  sink.used += (len + 7) & ~static_cast<size_t>(7);
  return p;
}

CutResult CutSegments(const uint8_t* f, size_t len, const Tcp& t, size_t mss, FrameSink& sink) {
  size_t headers = t.tcp + t.tcpLen;
  size_t segments = (t.payload + mss - 1) / mss;
  if (!Reserve(sink, t.payload + segments * (headers + 8), static_cast<uint32_t>(segments))) return CutResult::NoRoom;
  uint32_t seq = Get32(f + t.tcp + 4);
  uint16_t id = t.v6 ? 0 : Get16(f + t.ip + 4);
  uint8_t flags = f[t.tcp + 13];
  for (size_t i = 0, off = 0; i < segments; i++, off += mss) {
    size_t n = t.payload - off < mss ? t.payload - off : mss;
    uint8_t* s = Append(sink, headers + n);
    memcpy(s, f, headers);
    memcpy(s + headers, f + headers + off, n);
    if (t.v6) {
      Put16(s + t.ip + 4, static_cast<uint16_t>(t.tcpLen + n));
    } else {
      Put16(s + t.ip + 2, static_cast<uint16_t>(t.ipLen + t.tcpLen + n));
      Put16(s + t.ip + 4, static_cast<uint16_t>(id + i));
      SetIpv4Checksum(s, t);
    }
    Put32(s + t.tcp + 4, seq + static_cast<uint32_t>(off));
    // As the kernel's TSO: CWR on the first segment only, FIN and PSH on the last only.
    uint8_t fl = flags;
    if (i > 0) fl &= static_cast<uint8_t>(~kTcpCwr);
    if (i + 1 < segments) fl &= static_cast<uint8_t>(~(kTcpFin | kTcpPsh));
    s[t.tcp + 13] = fl;
    Put16(s + t.tcp + kTcpChecksumOffset, 0);
    uint64_t acc = PseudoSum(s, t, t.tcpLen + n);
    Put16(s + t.tcp + kTcpChecksumOffset, static_cast<uint16_t>(~Fold(Sum(s + t.tcp, t.tcpLen + n, acc))));
  }
  return CutResult::Ok;
}

uint16_t GetNative16(const uint8_t* p) {
  uint16_t v;
  memcpy(&v, p, 2);
  return v;
}

}  // namespace

bool SetOffloads(int fd, bool on) {
  unsigned long flags = on ? (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) : 0;
  return ioctl(fd, TUNSETOFFLOAD, flags) == 0;
}

CutResult Cut(const uint8_t* packet, size_t len, FrameSink& sink) {
  if (len < kVnetHdrSize + kEthHeader) return CutResult::Dropped;
  // The header is in the host's byte order (legacy virtio; the TAP is not set to BE).
  struct virtio_net_hdr h;
  h.flags = packet[0];
  h.gso_type = packet[1];
  h.gso_size = GetNative16(packet + 4);
  h.csum_start = GetNative16(packet + 6);
  h.csum_offset = GetNative16(packet + 8);
  const uint8_t* f = packet + kVnetHdrSize;
  size_t flen = len - kVnetHdrSize;
  uint8_t gso = h.gso_type & static_cast<uint8_t>(~VIRTIO_NET_HDR_GSO_ECN);
  if (gso == VIRTIO_NET_HDR_GSO_TCPV4 || gso == VIRTIO_NET_HDR_GSO_TCPV6) {
    Tcp t;
    if (!ParseTcp(f, flen, t) || t.v6 != (gso == VIRTIO_NET_HDR_GSO_TCPV6) || h.gso_size == 0) return CutResult::Dropped;
    if (t.payload > h.gso_size) return CutSegments(f, flen, t, h.gso_size, sink);
    // One segment's worth: only its checksum is missing (below).
  } else if (gso != VIRTIO_NET_HDR_GSO_NONE) {
    return CutResult::Dropped;  // UDP fragmentation offload: never enabled
  }
  if (!Reserve(sink, flen + 8, 1)) return CutResult::NoRoom;
  uint8_t* out = Append(sink, flen);
  memcpy(out, f, flen);
  if ((h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && !CompleteChecksum(out, flen, h.csum_start, h.csum_offset)) {
    sink.count--;
    sink.used = sink.offsets[sink.count];
    return CutResult::Dropped;
  }
  return CutResult::Ok;
}

namespace {

// What must be equal for two segments to be one flow's consecutive ones; everything
// but the lengths, IPv4 ID and checksum, TCP sequence number, PSH and checksum.
bool SameFlow(const uint8_t* a, const Tcp& ta, const uint8_t* b, const Tcp& tb) {
  if (ta.v6 != tb.v6 || ta.ipLen != tb.ipLen || ta.tcpLen != tb.tcpLen) return false;
  if (memcmp(a, b, kEthHeader) != 0) return false;
  const uint8_t* ia = a + ta.ip;
  const uint8_t* ib = b + tb.ip;
  if (ta.v6) {
    if (memcmp(ia, ib, 4) != 0 || memcmp(ia + 6, ib + 6, 34) != 0) return false;
  } else {
    if (ia[0] != ib[0] || ia[1] != ib[1] || memcmp(ia + 6, ib + 6, 4) != 0 || memcmp(ia + 12, ib + 12, ta.ipLen - 12) != 0) return false;
  }
  const uint8_t* ca = a + ta.tcp;
  const uint8_t* cb = b + tb.tcp;
  if (memcmp(ca, cb, 4) != 0 || memcmp(ca + 8, cb + 8, 5) != 0 || memcmp(ca + 14, cb + 14, 2) != 0) return false;
  if (memcmp(ca + 18, cb + 18, ta.tcpLen - 18) != 0) return false;
  return (ca[13] & static_cast<uint8_t>(~kTcpPsh)) == (cb[13] & static_cast<uint8_t>(~kTcpPsh));
}

// A segment that may join a run: plain ACK (PSH allowed) with data, checksums right
// (once coalesced the kernel trusts the run, so a damaged segment must stay alone).
bool Mergeable(const uint8_t* f, size_t len, Tcp& t) {
  if (!ParseTcp(f, len, t) || t.payload == 0) return false;
  uint8_t flags = f[t.tcp + 13];
  if ((flags & static_cast<uint8_t>(~kTcpPsh)) != kTcpAck) return false;
  if (!t.v6 && Fold(Sum(f + t.ip, t.ipLen)) != 0xFFFF) return false;
  return Fold(Sum(f + t.tcp, t.tcpLen + t.payload, PseudoSum(f, t, t.tcpLen + t.payload))) == 0xFFFF;
}

}  // namespace

namespace {

// The same connection: addresses and ports (what keeps one flow's segments in order).
bool SameConnection(const uint8_t* a, const Tcp& ta, const uint8_t* b, const Tcp& tb) {
  if (ta.v6 != tb.v6) return false;
  size_t addrs = ta.v6 ? 8 : 12;
  size_t len = ta.v6 ? 32 : 8;
  return memcmp(a + ta.ip + addrs, b + tb.ip + addrs, len) == 0 && memcmp(a + ta.tcp, b + tb.tcp, 4) == 0;
}

// Frames that become one write: a run of one flow's segments, or one frame alone.
struct Run {
  std::vector<uint32_t> members;
  bool tcp = false;   // parsed as TCP (first, below, is valid)
  bool open = false;  // may still take segments
  Tcp first{};
  size_t mss = 0;
  size_t total = 0;
  uint32_t next = 0;
};

// How many runs back a segment looks for its flow's open run: a batch interleaves a
// few flows, not hundreds.
constexpr size_t kFlowSearch = 16;

}  // namespace

std::vector<Write> Coalesce(const Frame* frames, size_t n, std::vector<uint8_t>& scratch) {
  // Runs in the order of their first frame; a flow's segments only ever join its
  // newest run, so each flow keeps its order (flows may pass each other, as on a NIC).
  std::vector<Run> runs;
  runs.reserve(n);
  for (size_t i = 0; i < n; i++) {
    const uint8_t* f = frames[i].data;
    Tcp t;
    bool tcp = ParseTcp(f, frames[i].len, t);
    Run* flow = nullptr;
    if (tcp) {
      for (size_t k = runs.size(), looked = 0; k > 0 && looked < kFlowSearch; k--, looked++) {
        Run& r = runs[k - 1];
        if (r.tcp && SameConnection(frames[r.members[0]].data, r.first, f, t)) {
          flow = &r;
          break;
        }
      }
    }
    bool mergeable = tcp && t.tcp + t.tcpLen <= 128 && Mergeable(f, frames[i].len, t);
    if (flow != nullptr && flow->open && mergeable) {
      const uint8_t* head = frames[flow->members[0]].data;
      if (t.payload <= flow->mss && Get32(f + t.tcp + 4) == flow->next && SameFlow(head, flow->first, f, t) &&
          flow->first.ipLen + flow->first.tcpLen + flow->total + t.payload <= kMaxIpLength) {
        flow->members.push_back(static_cast<uint32_t>(i));
        flow->total += t.payload;
        flow->next += static_cast<uint32_t>(t.payload);
        // A run ends after a PSH or a short segment.
        flow->open = !(f[t.tcp + 13] & kTcpPsh) && t.payload == flow->mss;
        continue;
      }
    }
    // Nothing of this flow may join an older run past this frame.
    if (flow != nullptr) flow->open = false;
    Run r;
    r.members.push_back(static_cast<uint32_t>(i));
    r.tcp = tcp;
    if (tcp) r.first = t;
    if (mergeable) {
      r.mss = t.payload;
      r.total = t.payload;
      r.next = Get32(f + t.tcp + 4) + static_cast<uint32_t>(t.payload);
      r.open = !(f[t.tcp + 13] & kTcpPsh);
    }
    runs.push_back(std::move(r));
  }

  // Every write gets a header (and a run its patched headers) in scratch; sized up
  // front so the iovs' pointers stay valid.
  constexpr size_t kSlot = kVnetHdrSize + 128;
  scratch.assign(runs.size() * kSlot, 0);
  std::vector<Write> writes;
  writes.reserve(runs.size());
  for (size_t w = 0; w < runs.size(); w++) {
    const Run& r = runs[w];
    uint8_t* hdr = scratch.data() + w * kSlot;
    Write out;
    out.frames = static_cast<uint32_t>(r.members.size());
    if (r.members.size() == 1) {
      // Alone: an empty header says "an ordinary frame, checksums complete".
      const Frame& c = frames[r.members[0]];
      out.iov.push_back({hdr, kVnetHdrSize});
      out.iov.push_back({const_cast<uint8_t*>(c.data), c.len});
      writes.push_back(std::move(out));
      continue;
    }
    const Tcp& first = r.first;
    const uint8_t* head = frames[r.members[0]].data;
    const uint8_t* last = frames[r.members.back()].data;
    size_t headers = first.tcp + first.tcpLen;
    uint8_t* h = hdr + kVnetHdrSize;
    memcpy(h, head, headers);
    if (first.v6) {
      Put16(h + first.ip + 4, static_cast<uint16_t>(first.tcpLen + r.total));
    } else {
      Put16(h + first.ip + 2, static_cast<uint16_t>(first.ipLen + first.tcpLen + r.total));
      SetIpv4Checksum(h, first);
    }
    h[first.tcp + 13] |= static_cast<uint8_t>(last[first.tcp + 13] & kTcpPsh);
    // CHECKSUM_PARTIAL as the kernel expects it: the pseudo-header's folded sum
    // (over the whole run's length), not complemented.
    Put16(h + first.tcp + kTcpChecksumOffset, Fold(PseudoSum(h, first, first.tcpLen + r.total)));
    struct virtio_net_hdr v;
    memset(&v, 0, sizeof v);
    v.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    v.gso_type = first.v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4;
    v.hdr_len = static_cast<uint16_t>(headers);
    v.gso_size = static_cast<uint16_t>(r.mss);
    v.csum_start = static_cast<uint16_t>(first.tcp);
    v.csum_offset = static_cast<uint16_t>(kTcpChecksumOffset);
    memcpy(hdr, &v, kVnetHdrSize);
    out.iov.push_back({hdr, kVnetHdrSize + headers});
    for (uint32_t m : r.members) {
      const Frame& c = frames[m];
      out.iov.push_back({const_cast<uint8_t*>(c.data) + headers, c.len - headers});
    }
    writes.push_back(std::move(out));
  }
  return writes;
}

SegmentingReader::SegmentingReader() : scratch_(kReadBytes) {}

bool SegmentingReader::ReadOne(int fd, size_t& len) {
  for (;;) {
    ssize_t r = read(fd, scratch_.data(), scratch_.size());
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;  // EAGAIN: drained; an error surfaces through the device's state
    len = static_cast<size_t>(r);
    return true;
  }
}

namespace {

// segment(packet: Buffer) -> Buffer[]: what a reader delivers for one packet read.
Napi::Value SegmentJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Buffer<uint8_t> p = info[0].As<Napi::Buffer<uint8_t>>();
  std::vector<uint8_t> data(256 * 1024);
  std::vector<uint32_t> lengths(2048), offsets(2048);
  FrameSink sink{data.data(), data.size(), lengths.data(), offsets.data(), 2048};
  Napi::Array out = Napi::Array::New(env);
  if (Cut(p.Data(), p.Length(), sink) != CutResult::Ok) return out;
  for (uint32_t i = 0; i < sink.count; i++) out.Set(i, Napi::Buffer<uint8_t>::Copy(env, data.data() + offsets[i], lengths[i]));
  return out;
}

// coalesce(frames: Buffer[]) -> { packet: Buffer, frames: number }[]: the writes a
// batch becomes, each as the bytes handed to the TAP (header + frame).
Napi::Value CoalesceJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array list = info[0].As<Napi::Array>();
  std::vector<Frame> frames;
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Buffer<uint8_t> b = list.Get(i).As<Napi::Buffer<uint8_t>>();
    frames.push_back({b.Data(), b.Length()});
  }
  std::vector<uint8_t> scratch;
  std::vector<Write> writes = Coalesce(frames.data(), frames.size(), scratch);
  Napi::Array out = Napi::Array::New(env);
  for (size_t w = 0; w < writes.size(); w++) {
    std::vector<uint8_t> bytes;
    for (const struct iovec& v : writes[w].iov) bytes.insert(bytes.end(), static_cast<uint8_t*>(v.iov_base), static_cast<uint8_t*>(v.iov_base) + v.iov_len);
    Napi::Object o = Napi::Object::New(env);
    o.Set("packet", Napi::Buffer<uint8_t>::Copy(env, bytes.data(), bytes.size()));
    o.Set("frames", writes[w].frames);
    out.Set(static_cast<uint32_t>(w), o);
  }
  return out;
}

}  // namespace

void InitExports(Napi::Env env, Napi::Object exports) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("segment", Napi::Function::New(env, SegmentJs));
  o.Set("coalesce", Napi::Function::New(env, CoalesceJs));
  o.Set("vnetHeaderSize", static_cast<double>(kVnetHdrSize));
  exports.Set("offload", o);
}

}  // namespace offload
}  // namespace ctun
