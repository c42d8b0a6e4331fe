// See stream_link.h.
#include "stream_link.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "fd_watch.h"
#include "wire.h"

namespace ctun {
namespace fastpath {

namespace {

// One read of up to 64 KiB at a time, as Node reads a socket; a message is at most
// maxPayload (MAX_FRAME, 9 KiB) and its header, so a cut one always fits beside.
constexpr size_t kReadBuffer = 64 * 1024;
// A send queue that grew past this under load gives its memory back once empty.
constexpr size_t kKeptQueueCapacity = 256 * 1024;
// Reads per wake-up at most, so one busy connection cannot keep the loop to itself.
constexpr int kReadsPerWake = 16;
// A sealed record: its length (u16 BE), then a sealed datagram of whole messages whose
// plaintext is at most 16 KiB (a TLS record's bound); a record always fits beside a
// cut one in the read buffer.
constexpr size_t kRecordPrefix = 2;
constexpr size_t kMaxRecordPlain = 16 * 1024;
constexpr size_t kRecordOverhead = wire::kSealedHeaderSize + wire::kTagSize;
constexpr size_t kMaxRecord = kMaxRecordPlain + kRecordOverhead;
static_assert(2 * (kRecordPrefix + kMaxRecord) <= kReadBuffer, "a record fits beside a cut one");

uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

// The length of the whole message at `m` (at most `avail` bytes there), or 0 when its
// header is not ctun's or it is longer than `maxPayload` or cut.
size_t WholeMessage(const uint8_t* m, size_t avail, size_t maxPayload) {
  if (avail < wire::kHeaderSize || m[0] < wire::kTypeMin || m[0] > wire::kTypeMax) return 0;
  size_t len = Be16(m + 2);
  return len > maxPayload || wire::kHeaderSize + len > avail ? 0 : wire::kHeaderSize + len;
}

}  // namespace

Napi::FunctionReference StreamLink::constructor;

Napi::Function StreamLink::Init(Napi::Env env) {
  Napi::Function f = DefineClass(env, "StreamLink",
                                 {InstanceMethod("write", &StreamLink::Write), InstanceMethod("queued", &StreamLink::Queued),
                                  InstanceMethod("attach", &StreamLink::Attach), InstanceMethod("close", &StreamLink::Close)});
  constructor = Napi::Persistent(f);
  constructor.SuppressDestruct();
  return f;
}

StreamLink* StreamLinkOf(Napi::Value value) {
  if (!value.IsObject() || StreamLink::constructor.IsEmpty() || !value.As<Napi::Object>().InstanceOf(StreamLink::constructor.Value())) return nullptr;
  return StreamLink::Unwrap(value.As<Napi::Object>());
}

StreamLink::StreamLink(const Napi::CallbackInfo& info) : Napi::ObjectWrap<StreamLink>(info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  peerIp_ = info[1].As<Napi::Number>().Uint32Value();
  peerPort_ = info[2].As<Napi::Number>().Uint32Value();
  maxQueue_ = info[3].As<Napi::Number>().Uint32Value();
  maxPayload_ = info[4].As<Napi::Number>().Uint32Value();
  Napi::Buffer<uint8_t> leftover = info[5].As<Napi::Buffer<uint8_t>>();
  onBytes_ = Napi::Persistent(info[6].As<Napi::Function>());
  onClosed_ = Napi::Persistent(info[7].As<Napi::Function>());
  if (info.Length() > 8 && !info[8].IsUndefined()) {
    sealer_ = SealerOf(info[8]);
    if (sealer_ == nullptr || !info[9].IsString()) {
      Napi::TypeError::New(env, "a sealed stream needs a Sealer and a role ('client' | 'server')").ThrowAsJavaScriptException();
      return;
    }
    sealerRef_ = Napi::Persistent(info[8].As<Napi::Object>());
    holding_ = info[9].As<Napi::String>().Utf8Value() == "server";
  }
  if (maxPayload_ + wire::kHeaderSize > kReadBuffer / 2 || leftover.Length() > kReadBuffer / 2) {
    Napi::RangeError::New(env, "a message does not fit the read buffer").ThrowAsJavaScriptException();
    return;
  }
  // Not zeroed: only the pages reads fill become resident.
  in_.reset(new uint8_t[kReadBuffer]);
  memcpy(in_.get(), leftover.Data(), leftover.Length());
  inLen_ = leftover.Length();
  // Our own descriptor of the same connection: Node keeps (and later closes) its own,
  // and libuv watches each number separately.
  fd_ = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (fd_ < 0) {
    Napi::Error::New(env, std::string("dup of the connection failed: ") + strerror(errno)).ThrowAsJavaScriptException();
    return;
  }
  fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
  poll_ = WatchFd(env, fd_, this, UV_READABLE, OnEvents);
  if (poll_ == nullptr) {
    close(fd_);
    fd_ = -1;
    Napi::Error::New(env, "uv_poll_init failed").ThrowAsJavaScriptException();
    return;
  }
  // Alive while polling, even when JavaScript drops its handle.
  Ref();
  // The client's first record (empty) tells the server its TLS reader has stopped.
  if (sealer_ != nullptr && !holding_ && QueueRecord(nullptr, 0, 0)) {
    Flush();
    Watch();
  }
}

StreamLink::~StreamLink() {
  if (fd_ >= 0) close(fd_);
}

void StreamLink::OnEvents(uv_poll_t* handle, int status, int events) {
  StreamLink* self = static_cast<StreamLink*>(handle->data);
  Napi::HandleScope scope(self->Env());
  if (status < 0) {
    self->Fail(std::string("connection error: ") + uv_strerror(status));
    return;
  }
  if ((events & UV_WRITABLE) != 0) {
    self->Flush();
    self->Watch();
  }
  if ((events & UV_READABLE) != 0 && self->fd_ >= 0) {
    ctun::busypoll::Heard(self->spin_);
    self->Readable();
  }
}

void StreamLink::Readable() {
  bool wasHolding = holding_;
  bool eof = false;
  std::string error;
  for (int round = 0; round < kReadsPerWake && fd_ >= 0; round++) {
    size_t space = kReadBuffer - inLen_;
    ssize_t r = read(fd_, in_.get() + inLen_, space);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) error = strerror(errno);
      break;
    }
    if (r == 0) {
      eof = true;
      break;
    }
    inLen_ += static_cast<size_t>(r);
    size_t used = sealer_ != nullptr ? ParseSealed() : Parse();
    // The forwarder's frames point into in_: written before the buffer moves.
    if (Forwarder* f = fast_.Active()) f->Flush();
    memmove(in_.get(), in_.get() + used, inLen_ - used);
    inLen_ -= used;
    if (sealFailure_ != 0 || static_cast<size_t>(r) < space) break;  // refused, or drained
  }
  // The client's first record lifted the hold: what waited goes now.
  if (wasHolding && !holding_) {
    Flush();
    Watch();
  }
  DeliverBytes();  // may close this link (JavaScript's decoder found garbage)
  if (fd_ < 0 || failed_) return;
  if (sealFailure_ != 0) Fail("a sealed record did not open: the stream was altered, or the peer is not this session's");
  else if (!error.empty()) Fail(error);
  else if (eof) Fail("connection closed by the peer");
}

size_t StreamLink::Parse() {
  Forwarder* f = fast_.Active();
  size_t off = 0;
  while (!raw_ && inLen_ - off >= wire::kHeaderSize) {
    uint8_t* m = in_.get() + off;
    uint8_t type = m[0];
    size_t len = (static_cast<size_t>(m[2]) << 8) | m[3];
    if (type < wire::kTypeMin || type > wire::kTypeMax || len > maxPayload_) {
      raw_ = true;
      break;
    }
    size_t whole = wire::kHeaderSize + len;
    if (off + whole > inLen_) break;
    Route(f, m, whole);
    off += whole;
  }
  if (raw_) {
    toJs_.insert(toJs_.end(), in_.get() + off, in_.get() + inLen_);
    off = inLen_;
  }
  return off;
}

void StreamLink::Route(Forwarder* f, uint8_t* m, size_t whole) {
  // One message as a one-message datagram from the connection's peer.
  bool taken = f != nullptr && m[0] == wire::kTypeData && f->FromUdp(m, static_cast<uint32_t>(whole), peerIp_, peerPort_);
  if (!taken) toJs_.insert(toJs_.end(), m, m + whole);
}

size_t StreamLink::ParseSealed() {
  Forwarder* f = fast_.Active();
  size_t off = 0;
  while (sealFailure_ == 0 && inLen_ - off >= kRecordPrefix) {
    uint8_t* r = in_.get() + off;
    size_t len = Be16(r);
    if (len < kRecordOverhead || len > kMaxRecord) {
      sealFailure_ = len < kRecordOverhead ? Sealer::kTruncated : Sealer::kNotSealed;
      break;
    }
    if (off + kRecordPrefix + len > inLen_) break;
    Sealer::Opened opened{};
    Sealer::Failure why = sealer_->Open(r + kRecordPrefix, len, opened);
    if (why != Sealer::kOk) {
      sealFailure_ = why;
      break;
    }
    sealer_->Accept(opened);
    holding_ = false;
    uint8_t* plain = r + kRecordPrefix + wire::kSealedHeaderSize;
    size_t at = 0;
    while (size_t whole = WholeMessage(plain + at, opened.plain - at, maxPayload_)) {
      Route(f, plain + at, whole);
      at += whole;
    }
    // What is not a whole message goes to JavaScript, whose decoder names the error.
    if (at < opened.plain) toJs_.insert(toJs_.end(), plain + at, plain + opened.plain);
    off += kRecordPrefix + len;
  }
  return off;
}

bool StreamLink::QueueRecord(const aead::Part* parts, size_t n, size_t plain) {
  size_t total = kRecordPrefix + kRecordOverhead + plain;
  if (plain > kMaxRecordPlain || out_.size() - outStart_ + total > maxQueue_) return false;
  size_t at = out_.size();
  out_.resize(at + total);
  size_t sealed = sealer_->Seal(parts, n, plain, out_.data() + at + kRecordPrefix);
  if (sealed == 0) {
    out_.resize(at);
    return false;
  }
  out_[at] = static_cast<uint8_t>(sealed >> 8);
  out_[at + 1] = static_cast<uint8_t>(sealed & 255);
  return true;
}

void StreamLink::DeliverBytes() {
  if (toJs_.empty() || fd_ < 0) return;
  Napi::Env env = Env();
  Napi::Buffer<uint8_t> bytes = Napi::Buffer<uint8_t>::Copy(env, toJs_.data(), toJs_.size());
  toJs_.clear();
  if (toJs_.capacity() > kKeptQueueCapacity) toJs_.shrink_to_fit();
  onBytes_.MakeCallback(env.Global(), {bytes});
}

void StreamLink::Flush() {
  if (holding_) return;
  while (fd_ >= 0 && !failed_ && outStart_ < out_.size()) {
    ssize_t w = write(fd_, out_.data() + outStart_, out_.size() - outStart_);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      // A reset or broken connection: nothing more is sent. The poll reports the
      // error or the end of the stream to the reader, which tells JavaScript (not
      // from here: a TAP reader may be on the stack).
      out_.clear();
      outStart_ = 0;
      writeBroken_ = true;
      return;
    }
    outStart_ += static_cast<size_t>(w);
  }
  if (outStart_ == out_.size()) {
    out_.clear();
    outStart_ = 0;
    if (out_.capacity() > kKeptQueueCapacity) out_.shrink_to_fit();
  } else if (outStart_ > out_.size() / 2) {
    out_.erase(out_.begin(), out_.begin() + static_cast<std::ptrdiff_t>(outStart_));
    outStart_ = 0;
  }
}

void StreamLink::Watch() {
  if (poll_ == nullptr) return;
  bool want = !holding_ && outStart_ < out_.size();
  if (want == writable_) return;
  writable_ = want;
  uv_poll_start(poll_, UV_READABLE | (want ? UV_WRITABLE : 0), OnEvents);
}

bool StreamLink::Sendable() const { return fd_ >= 0 && !failed_ && !writeBroken_; }

void StreamLink::SendFrames(const Frame* frames, uint32_t n, Tally& tally) {
  uint32_t accepted = 0;
  if (Sendable() && sealer_ != nullptr) {
    // As many frames per record as fit; a record past the queue bound drops its frames.
    headers_.resize(static_cast<size_t>(n) * wire::kHeaderSize);
    while (accepted < n) {
      parts_.clear();
      size_t plain = 0;
      uint32_t end = accepted;
      for (; end < n; end++) {
        size_t len = frames[end].len;
        if (len > maxPayload_ || plain + wire::kHeaderSize + len > kMaxRecordPlain) break;
        uint8_t* h = &headers_[static_cast<size_t>(end) * wire::kHeaderSize];
        h[0] = wire::kTypeData;
        h[1] = 0;
        h[2] = static_cast<uint8_t>(len >> 8);
        h[3] = static_cast<uint8_t>(len & 255);
        parts_.push_back({h, wire::kHeaderSize});
        parts_.push_back({frames[end].data, len});
        plain += wire::kHeaderSize + len;
      }
      if (end == accepted || !QueueRecord(parts_.data(), parts_.size(), plain)) break;
      accepted = end;
    }
    Flush();
    Watch();
  } else if (Sendable()) {
    size_t queued = out_.size() - outStart_;
    for (; accepted < n; accepted++) {
      size_t len = frames[accepted].len;
      if (len > maxPayload_ || queued + wire::kHeaderSize + len > maxQueue_) break;
      uint8_t header[wire::kHeaderSize] = {wire::kTypeData, 0, static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len & 255)};
      out_.insert(out_.end(), header, header + wire::kHeaderSize);
      out_.insert(out_.end(), frames[accepted].data, frames[accepted].data + len);
      queued += wire::kHeaderSize + len;
    }
    Flush();
    Watch();
  }
  tally.Count(frames, n, accepted);
}

Napi::Value StreamLink::Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Buffer<uint8_t> b = info[0].As<Napi::Buffer<uint8_t>>();
  if (sealer_ != nullptr) return Napi::Boolean::New(env, WriteSealed(b.Data(), b.Length()));
  if (!Sendable() || out_.size() - outStart_ + b.Length() > maxQueue_) return Napi::Boolean::New(env, false);
  out_.insert(out_.end(), b.Data(), b.Data() + b.Length());
  Flush();
  Watch();
  return Napi::Boolean::New(env, true);
}

bool StreamLink::WriteSealed(const uint8_t* d, size_t len) {
  if (!Sendable()) return false;
  // Whole messages, as many per record as fit: first the records' total against the
  // bound (all or nothing, as a plain write), then sealing.
  std::vector<size_t> ends;
  size_t at = 0, start = 0, total = 0;
  while (at < len) {
    size_t whole = WholeMessage(d + at, len - at, 0xffff);
    if (whole == 0 || whole > kMaxRecordPlain) return false;
    if (at + whole - start > kMaxRecordPlain) {
      ends.push_back(at);
      total += kRecordPrefix + kRecordOverhead + (at - start);
      start = at;
    }
    at += whole;
  }
  if (at > start) {
    ends.push_back(at);
    total += kRecordPrefix + kRecordOverhead + (at - start);
  }
  if (out_.size() - outStart_ + total > maxQueue_) return false;
  start = 0;
  for (size_t end : ends) {
    aead::Part part{d + start, end - start};
    if (!QueueRecord(&part, 1, end - start)) break;  // the counter is spent
    start = end;
  }
  Flush();
  Watch();
  return start == len;
}

Napi::Value StreamLink::Queued(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(out_.size() - outStart_));
}

Napi::Value StreamLink::Attach(const Napi::CallbackInfo& info) {
  fast_.Set(info[0]);
  return info.Env().Undefined();
}

void StreamLink::StopPolling() {
  if (poll_ == nullptr) return;
  Unwatch(poll_);
  Unref();
}

void StreamLink::Release() {
  // Now, not when the garbage collector finalizes this object: a server that saw many
  // connections come and go must not keep their buffers until then.
  in_.reset();
  inLen_ = 0;
  std::vector<uint8_t>().swap(out_);
  outStart_ = 0;
  std::vector<uint8_t>().swap(toJs_);
  sealer_ = nullptr;
  sealerRef_.Reset();
}

void StreamLink::Fail(const std::string& reason) {
  if (failed_ || fd_ < 0) return;
  failed_ = true;
  StopPolling();
  Release();
  Napi::Env env = Env();
  Napi::Value failure = sealFailure_ == 0 ? env.Undefined() : Napi::Number::New(env, sealFailure_);
  onClosed_.MakeCallback(env.Global(), {Napi::String::New(env, reason), failure});
}

Napi::Value StreamLink::Close(const Napi::CallbackInfo& info) {
  StopPolling();
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  Release();
  fast_.Clear();
  return info.Env().Undefined();
}

}  // namespace fastpath
}  // namespace ctun
