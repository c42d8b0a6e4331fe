// The native code of ctun: open a TAP device and move frames and datagrams in batches
// (this file), and seal datagrams with a kept cipher context (aead.cc). Everything
// else (protocol, sessions, switching, key schedule) is TypeScript.
#include <napi.h>
#include <uv.h>

#include "aead.h"
#include "busy_poll.h"
#include "sealer.h"
#include "datapath.h"
#include "fastpath.h"
#include "fd_watch.h"
#include "offload.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#ifndef UDP_GRO
#define UDP_GRO 104
#endif

namespace {

namespace wire = ctun::wire;

// Errors carry the errno name as `code` (EPERM, EBUSY, ...) so TypeScript can map
// them to a user-facing cause without parsing messages.
Napi::Value ThrowErrno(Napi::Env env, int err, const std::string& what) {
  Napi::Error e = Napi::Error::New(env, what + ": " + strerror(err));
  e.Set("code", Napi::String::New(env, uv_err_name(-err)));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, what));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

// open(name, offload = false) -> { fd, name, offload }. Creates a TAP, or attaches to
// an existing persistent one of that name (the kernel treats both the same way for
// TUNSETIFF). offload: with virtio-net headers and TSO/checksum offloads (offload.h),
// when the kernel takes them; otherwise opened plain and `offload` says false.
Napi::Value OpenPlain(const Napi::CallbackInfo& info, bool offload);

Napi::Value Open(const Napi::CallbackInfo& info) {
  bool offload = info.Length() > 1 && info[1].IsBoolean() && info[1].As<Napi::Boolean>().Value();
  if (offload) {
    Napi::Value v = OpenPlain(info, true);
    if (!v.IsObject() || v.As<Napi::Object>().Get("offload").As<Napi::Boolean>().Value()) return v;
    close(v.As<Napi::Object>().Get("fd").As<Napi::Number>().Int32Value());
  }
  return OpenPlain(info, false);
}

Napi::Value OpenPlain(const Napi::CallbackInfo& info, bool offload) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "open(name: string)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string name = info[0].As<Napi::String>();
  if (name.size() >= IFNAMSIZ) {
    Napi::TypeError::New(env, "interface name longer than 15 characters").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return ThrowErrno(env, errno, "open /dev/net/tun");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (offload ? IFF_VNET_HDR : 0);
  strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, err, "ioctl TUNSETIFF " + name);
  }
  // A persistent TAP keeps the offloads a previous opener set; without virtio-net
  // headers they would hand this reader unsegmented 64 KiB frames, so clear them.
  bool on = ctun::offload::SetOffloads(fd, offload) && offload;
  Napi::Object result = Napi::Object::New(env);
  result.Set("fd", fd);
  result.Set("name", std::string(ifr.ifr_name));
  result.Set("offload", on);
  return result;
}

// Buffers of a JavaScript array as (pointer, length) frames for datapath.h.
std::vector<ctun::datapath::Frame> FramesOf(Napi::Array list) {
  uint32_t n = list.Length();
  std::vector<ctun::datapath::Frame> frames(n);
  for (uint32_t i = 0; i < n; i++) {
    Napi::Buffer<uint8_t> b = list.Get(i).As<Napi::Buffer<uint8_t>>();
    frames[i] = {b.Data(), b.Length()};
  }
  return frames;
}

// writeFrames(fd, frames: Buffer[], offload = false) -> number written. One native
// call per batch; a full device queue (EAGAIN) ends the batch and the caller counts
// the rest as drops. offload: the fd has virtio-net headers; the batch is coalesced.
Napi::Value WriteFrames(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  bool offload = info.Length() > 2 && info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value();
  std::vector<ctun::datapath::Frame> frames = FramesOf(info[1].As<Napi::Array>());
  int64_t r = ctun::datapath::WriteTap(fd, frames.data(), static_cast<uint32_t>(frames.size()), offload);
  if (r < 0) return ThrowErrno(env, static_cast<int>(-r), "write tap");
  return Napi::Number::New(env, static_cast<double>(r));
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  ctun::datapath::Forget(fd);
  close(fd);
  return info.Env().Undefined();
}

// What both readers share: a non-blocking fd watched on the event loop (uv_poll, no
// thread), a JavaScript callback told how many items one wake-up drained, and a
// stop(). T supplies Drain() and Recover(): what to do when libuv reports an error
// (it stops the poll then); true means poll again and drain.
template <typename T>
class PollReader : public Napi::ObjectWrap<T> {
 protected:
  explicit PollReader(const Napi::CallbackInfo& info) : Napi::ObjectWrap<T>(info) {}

  // Starts watching fd; the reader stays alive while polling, even if JavaScript drops it.
  void StartPolling(Napi::Env env, int fd, Napi::Function callback) {
    fd_ = fd;
    callback_ = Napi::Persistent(callback);
    poll_ = ctun::WatchFd(env, fd_, this, UV_READABLE, OnReadable);
    if (poll_ == nullptr) {
      Napi::Error::New(env, "uv_poll_init failed").ThrowAsJavaScriptException();
      return;
    }
    this->Ref();
  }

  void Deliver(uint32_t count) {
    Napi::Env env = this->Env();
    Napi::HandleScope scope(env);
    callback_.MakeCallback(env.Global(), {Napi::Number::New(env, count)});
  }

  void PollAgain() {
    if (poll_ != nullptr) uv_poll_start(poll_, UV_READABLE, OnReadable);
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (poll_ != nullptr) {
      ctun::Unwatch(poll_);
      this->Unref();
    }
    return info.Env().Undefined();
  }

  // attach(fastPath | undefined): the data fast path (fastpath.h, either end) takes what it can
  // of every wake-up before JavaScript is called with the rest.
  Napi::Value Attach(const Napi::CallbackInfo& info) {
    fast_.Set(info[0]);
    return info.Env().Undefined();
  }

  // The attached fast path while it forwards, else null.
  ctun::fastpath::Forwarder* Fast() const { return fast_.Active(); }

  int fd_ = -1;

 private:
  ctun::fastpath::AttachedForwarder fast_;

  static void OnReadable(uv_poll_t* handle, int status, int) {
    T* self = static_cast<T*>(static_cast<PollReader<T>*>(handle->data));
    if (status < 0 && !self->Recover()) return;
    ctun::busypoll::Heard(self->spin_);
    self->Drain(handle->loop);
  }

  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference callback_;
  ctun::busypoll::SpinBudget spin_;
};

// A reader wakes up when the TAP is readable (uv_poll on the event loop, no thread)
// and drains up to `slots` frames into one shared buffer before calling JavaScript
// once with the count; lengths go to a shared Uint32Array.
class Reader : public PollReader<Reader> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Reader", {InstanceMethod("stop", &Reader::Stop), InstanceMethod("attach", &Reader::Attach)});
  }

  // new Reader(fd, buffer, lengths: Uint32Array, slotSize, onFrames(count), offsets?: Uint32Array)
  // With offsets, the fd has virtio-net headers: frames are cut from what is read
  // (offload.h) and packed in the buffer, frame i at offsets[i]; slotSize is unused.
  Reader(const Napi::CallbackInfo& info) : PollReader<Reader>(info) {
    Napi::Buffer<uint8_t> buf = info[1].As<Napi::Buffer<uint8_t>>();
    Napi::Uint32Array lengths = info[2].As<Napi::Uint32Array>();
    slot_ = info[3].As<Napi::Number>().Uint32Value();
    data_ = buf.Data();
    lengths_ = lengths.Data();
    slots_ = slot_ == 0 ? 0 : static_cast<uint32_t>(buf.Length() / slot_);
    if (slots_ > lengths.ElementLength()) slots_ = static_cast<uint32_t>(lengths.ElementLength());
    bufRef_ = Napi::Persistent(buf.As<Napi::Object>());
    lenRef_ = Napi::Persistent(lengths.As<Napi::Object>());
    if (info.Length() > 5 && info[5].IsTypedArray()) {
      Napi::Uint32Array offsets = info[5].As<Napi::Uint32Array>();
      uint32_t capacity = static_cast<uint32_t>(std::min(lengths.ElementLength(), offsets.ElementLength()));
      sink_.reset(new ctun::offload::FrameSink{data_, buf.Length(), lengths_, offsets.Data(), capacity});
      segmenting_.reset(new ctun::offload::SegmentingReader());
      offRef_ = Napi::Persistent(offsets.As<Napi::Object>());
    }
    StartPolling(info.Env(), info[0].As<Napi::Number>().Int32Value(), info[4].As<Napi::Function>());
  }

 private:
  friend class PollReader<Reader>;

  // An error on a TAP fd (the device went away): stay stopped; JavaScript learns of it
  // from the device's state, not from a busy loop here.
  bool Recover() { return false; }

  void Drain(uv_loop_t* loop) {
    if (segmenting_) {
      segmenting_->Drain(fd_, *sink_, budget_.Next(loop, ctun::offload::kMaxReads), [this](uint32_t count) {
        uint32_t left = Forward(count, sink_->offsets, 0);
        if (left > 0) Deliver(left);
      });
      return;
    }
    uint32_t most = std::min(slots_, static_cast<uint32_t>(budget_.Next(loop, static_cast<int>(slots_))));
    uint32_t count = 0;
    while (count < most) {
      ssize_t r = read(fd_, data_ + static_cast<size_t>(count) * slot_, slot_);
      if (r < 0) {
        if (errno == EINTR) continue;
        break;  // EAGAIN: drained; other errors surface as EOF to JS below
      }
      if (r == 0) break;
      lengths_[count++] = static_cast<uint32_t>(r);
    }
    if (count == 0) return;
    uint32_t left = Forward(count, nullptr, slot_);
    if (left > 0) Deliver(left);
  }

  // Hands the wake-up's frames to the fast path when one forwards (the client's takes
  // every frame, the server's those its switch would send to one client) and returns
  // how many are left for JavaScript, moved to the front: frame i is at offsets[i], or
  // at i * slot without offsets.
  uint32_t Forward(uint32_t count, uint32_t* offsets, uint32_t slot) {
    ctun::fastpath::Forwarder* fast = Fast();
    if (fast == nullptr) return count;
    frames_.resize(count);
    rest_.resize(count);
    for (uint32_t i = 0; i < count; i++) frames_[i] = {data_ + (offsets != nullptr ? offsets[i] : static_cast<size_t>(i) * slot), lengths_[i]};
    uint32_t left = fast->FromTap(frames_.data(), count, rest_.data());
    for (uint32_t j = 0; j < left; j++) {
      uint32_t k = rest_[j];
      if (k == j) continue;
      // k > j: slot j was handed on already, so its bytes may be overwritten.
      if (offsets != nullptr) offsets[j] = offsets[k];
      else memmove(data_ + static_cast<size_t>(j) * slot, data_ + static_cast<size_t>(k) * slot, lengths_[k]);
      lengths_[j] = lengths_[k];
    }
    return left;
  }

  uint8_t* data_ = nullptr;
  uint32_t* lengths_ = nullptr;
  uint32_t slot_ = 0;
  uint32_t slots_ = 0;
  Napi::ObjectReference bufRef_;
  Napi::ObjectReference lenRef_;
  Napi::ObjectReference offRef_;
  std::unique_ptr<ctun::offload::FrameSink> sink_;
  std::unique_ptr<ctun::offload::SegmentingReader> segmenting_;
  std::vector<ctun::datapath::Frame> frames_;
  std::vector<uint32_t> rest_;
  ctun::ReadBudget budget_;
};


// ---------------------------------------------------------------- UDP data socket
//
// Node's dgram sends and receives one datagram per system call and per JavaScript
// callback; at tunnel rates that per-datagram cost dominates. This socket batches
// both ways with sendmmsg/recvmmsg. The wire format is unchanged (PROTOCOL.md): each
// datagram is whole messages; sendFrames prefixes each frame with its 4-byte Data
// header. Control messages use the same socket through send().

// udpOpen(host: string, port: number, bufferBytes: number, offload = true) -> fd
// offload false: no UDP GRO on receive and no GSO on send, one datagram per message
// both ways (the path a kernel without them takes; tests force it to prove it works).
Napi::Value UdpOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string host = info[0].As<Napi::String>();
  uint32_t port = info[1].As<Napi::Number>().Uint32Value();
  int bufBytes = info[2].As<Napi::Number>().Int32Value();
  bool offload = info.Length() < 4 || !info[3].IsBoolean() || info[3].As<Napi::Boolean>().Value();
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1) return ThrowErrno(env, EINVAL, "bind " + host);
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ThrowErrno(env, errno, "socket");
  // Best effort, as dgram's recvBufferSize: the kernel caps it at rmem_max/wmem_max.
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufBytes, sizeof bufBytes);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufBytes, sizeof bufBytes);
  // UDP GRO: the kernel may hand over a run of equal-sized datagrams from one sender
  // as one buffer (the reader splits it by the segment size it reports). Best effort.
  int one = 1;
  if (offload) setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one);
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&sa), sizeof sa) < 0) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, err, "bind");
  }
  ctun::datapath::AllowGso(fd, offload);  // a reused fd number starts afresh
  socklen_t len = sizeof sa;
  getsockname(fd, reinterpret_cast<struct sockaddr*>(&sa), &len);
  Napi::Object result = Napi::Object::New(env);
  result.Set("fd", fd);
  result.Set("port", ntohs(sa.sin_port));
  return result;
}

// udpConnect(fd, ip: number, port) — the client's socket talks to one server only.
Napi::Value UdpConnect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(info[1].As<Napi::Number>().Uint32Value());
  sa.sin_port = htons(static_cast<uint16_t>(info[2].As<Napi::Number>().Uint32Value()));
  if (connect(fd, reinterpret_cast<struct sockaddr*>(&sa), sizeof sa) < 0) return ThrowErrno(env, errno, "connect");
  return env.Undefined();
}

constexpr unsigned kMaxBatch = 256;

// udpSend(fd, datagrams: Buffer[], ip, port, frames: boolean) -> number sent.
// frames=true: each buffer is an Ethernet frame and gets a Data header (type 1,
// flags 0, length); false: each buffer is a whole datagram already. ip 0: the
// connected peer. One sendmmsg per 256; a full socket buffer ends the batch.
Napi::Value UdpSend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  std::vector<ctun::datapath::Frame> list = FramesOf(info[1].As<Napi::Array>());
  uint32_t ip = info[2].As<Napi::Number>().Uint32Value();
  uint32_t port = info[3].As<Napi::Number>().Uint32Value();
  bool frames = info[4].As<Napi::Boolean>().Value();
  int64_t r = ctun::datapath::SendDatagrams(fd, list.data(), static_cast<uint32_t>(list.size()), ip, port, frames);
  if (r < 0) return ThrowErrno(env, static_cast<int>(-r), "sendmmsg");
  return Napi::Number::New(env, static_cast<double>(r));
}

// A UDP reader: like the TAP reader, but one recvmmsg fills up to `slots` slots. A
// slot holds one datagram, or with GRO a run of equal-sized ones (the kernel says
// the size), which are split here. Datagram i is offsets[i], lengths[i] in the
// buffer; its sender addrs[2i] (IPv4, host order) and addrs[2i+1] (port).
class UdpReader : public PollReader<UdpReader> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "UdpReader", {InstanceMethod("stop", &UdpReader::Stop), InstanceMethod("attach", &UdpReader::Attach), InstanceMethod("filtered", &UdpReader::Filtered), InstanceMethod("coalesced", &UdpReader::Coalesced)});
  }

  // new UdpReader(fd, buffer, lengths: Uint32Array, offsets: Uint32Array, addrs: Uint32Array, slotSize, onDatagrams(count))
  UdpReader(const Napi::CallbackInfo& info) : PollReader<UdpReader>(info) {
    Napi::Buffer<uint8_t> buf = info[1].As<Napi::Buffer<uint8_t>>();
    Napi::Uint32Array lengths = info[2].As<Napi::Uint32Array>();
    Napi::Uint32Array offsets = info[3].As<Napi::Uint32Array>();
    Napi::Uint32Array addrs = info[4].As<Napi::Uint32Array>();
    slot_ = info[5].As<Napi::Number>().Uint32Value();
    data_ = buf.Data();
    lengths_ = lengths.Data();
    offsets_ = offsets.Data();
    addrs_ = addrs.Data();
    slots_ = static_cast<uint32_t>(buf.Length() / slot_);
    if (slots_ > kMaxBatch) slots_ = kMaxBatch;
    capacity_ = static_cast<uint32_t>(lengths.ElementLength());
    if (capacity_ > offsets.ElementLength()) capacity_ = static_cast<uint32_t>(offsets.ElementLength());
    if (capacity_ > addrs.ElementLength() / 2) capacity_ = static_cast<uint32_t>(addrs.ElementLength() / 2);
    if (slots_ > capacity_) slots_ = capacity_;
    bufRef_ = Napi::Persistent(buf.As<Napi::Object>());
    lenRef_ = Napi::Persistent(lengths.As<Napi::Object>());
    offRef_ = Napi::Persistent(offsets.As<Napi::Object>());
    addrRef_ = Napi::Persistent(addrs.As<Napi::Object>());
    StartPolling(info.Env(), info[0].As<Napi::Number>().Int32Value(), info[6].As<Napi::Function>());
  }

 private:
  friend class PollReader<UdpReader>;

  // An ICMP error is queued on the socket (port unreachable: the client's hellos
  // while the server is away). libuv stopped polling on POLLERR; without a restart
  // the restarted server's welcome would never be read. Clear it, poll again.
  bool Recover() {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
    PollAgain();
    return true;
  }

  // One recvmmsg per wake-up whatever the loop did: it returns what is there, never
  // an empty read after a lone datagram.
  void Drain(uv_loop_t*) {
    struct mmsghdr msgs[kMaxBatch];
    struct iovec iov[kMaxBatch];
    struct sockaddr_in from[kMaxBatch];
    alignas(struct cmsghdr) char control[kMaxBatch][CMSG_SPACE(sizeof(int))];
    memset(msgs, 0, sizeof(struct mmsghdr) * slots_);
    for (uint32_t i = 0; i < slots_; i++) {
      iov[i] = {data_ + static_cast<size_t>(i) * slot_, slot_};
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &from[i];
      msgs[i].msg_hdr.msg_namelen = sizeof from[i];
      msgs[i].msg_hdr.msg_control = control[i];
      msgs[i].msg_hdr.msg_controllen = sizeof control[i];
    }
    int r;
    do { r = recvmmsg(fd_, msgs, slots_, MSG_DONTWAIT, nullptr); } while (r < 0 && errno == EINTR);
    if (r <= 0) return;  // EAGAIN, or an ICMP error queued on the socket: nothing to deliver
    uint32_t count = 0;
    ctun::fastpath::Forwarder* fast = Fast();
    for (int i = 0; i < r; i++) {
      // A datagram larger than a slot is truncated: not whole messages, so drop it.
      if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) continue;
      uint32_t total = msgs[i].msg_len;
      uint32_t segment = total;
      for (struct cmsghdr* c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c != nullptr; c = CMSG_NXTHDR(&msgs[i].msg_hdr, c)) {
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
          uint16_t gso = 0;
          memcpy(&gso, CMSG_DATA(c), sizeof gso);
          if (gso > 0 && gso < total) {
            segment = gso;
            coalesced_ += (total + gso - 1) / gso;
          }
        }
      }
      uint32_t base = static_cast<uint32_t>(i) * slot_;
      for (uint32_t off = 0; off < total && count < capacity_; off += segment) {
        uint32_t len = total - off < segment ? total - off : segment;
        // Garbage never reaches JavaScript: a flood of it must cost a recvmmsg slot, not
        // a callback, an exception and an allocation each (PROTOCOL.md, hostile input).
        if (!Plausible(data_ + base + off, len)) {
          filtered_++;
          continue;
        }
        if (fast != nullptr && fast->FromUdp(data_ + base + off, len, ntohl(from[i].sin_addr.s_addr), ntohs(from[i].sin_port))) continue;
        offsets_[count] = base + off;
        lengths_[count] = len;
        addrs_[2 * count] = ntohl(from[i].sin_addr.s_addr);
        addrs_[2 * count + 1] = ntohs(from[i].sin_port);
        count++;
      }
    }
    // Frames for the TAP first: they point into the buffer the next wake-up refills.
    if (fast != nullptr) fast->Flush();
    if (count > 0) Deliver(count);
  }

  Napi::Value Filtered(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(filtered_));
  }

  // Datagrams that arrived inside GRO runs (several per slot).
  Napi::Value Coalesced(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(coalesced_));
  }

  // A sealed datagram (its marker), or a chain of
  // whole plain messages with known types that ends exactly at the datagram's
  // end. Everything else is garbage; TypeScript still checks what passes in full.
  static bool Plausible(const uint8_t* d, uint32_t len) {
    // Anything with the sealed marker goes up: the sealer classifies and counts it
    // (truncated, tampered, replayed...), and that is 1 in 256 of random garbage.
    if (len >= 1 && d[0] == wire::kSealedMarker) return true;
    uint32_t off = 0;
    while (off + wire::kHeaderSize <= len) {
      uint8_t type = d[off];
      if (type < wire::kTypeMin || type > wire::kTypeMax || d[off + 1] != 0) return false;
      uint32_t n = (static_cast<uint32_t>(d[off + 2]) << 8) | d[off + 3];
      off += wire::kHeaderSize + n;
    }
    return off == len && len > 0;
  }

  uint64_t filtered_ = 0;
  uint64_t coalesced_ = 0;
  uint8_t* data_ = nullptr;
  uint32_t* lengths_ = nullptr;
  uint32_t* offsets_ = nullptr;
  uint32_t* addrs_ = nullptr;
  uint32_t slot_ = 0;
  uint32_t slots_ = 0;
  uint32_t capacity_ = 0;
  Napi::ObjectReference bufRef_;
  Napi::ObjectReference lenRef_;
  Napi::ObjectReference offRef_;
  Napi::ObjectReference addrRef_;
};

// Gives the C heap's free pages back to the kernel (glibc's malloc_trim). At full rate
// on TCP and TLS, Node allocates a fresh buffer per socket read and frees it only when
// V8 next collects garbage; glibc keeps the freed pages, and they stay resident as the
// end's private memory long after the burst. Returns whether any memory was released.
Napi::Value TrimHeap(const Napi::CallbackInfo& info) {
#ifdef __GLIBC__
  return Napi::Boolean::New(info.Env(), malloc_trim(0) != 0);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("trimHeap", Napi::Function::New(env, TrimHeap));
  exports.Set("open", Napi::Function::New(env, Open));
  exports.Set("writeFrames", Napi::Function::New(env, WriteFrames));
  exports.Set("close", Napi::Function::New(env, Close));
  exports.Set("Reader", Reader::Init(env));
  exports.Set("udpOpen", Napi::Function::New(env, UdpOpen));
  exports.Set("udpConnect", Napi::Function::New(env, UdpConnect));
  exports.Set("udpSend", Napi::Function::New(env, UdpSend));
  exports.Set("UdpReader", UdpReader::Init(env));
  exports.Set("wire", ctun::wire::Constants(env));
  ctun::offload::InitExports(env, exports);
  ctun::fastpath::InitExports(env, exports);
  ctun::InitAead(env, exports);
  ctun::InitSealer(env, exports);
  ctun::busypoll::InitExports(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(ctun_tap, Init)
