// The only native code of ctun: open a TAP device and move frames in batches.
// Everything above the file descriptor (protocol, sessions, switching) is TypeScript.
#include <napi.h>
#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <string>

namespace {

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

// open(name) -> { fd, name }. Creates a TAP, or attaches to an existing persistent
// one of that name (the kernel treats both the same way for TUNSETIFF).
Napi::Value Open(const Napi::CallbackInfo& info) {
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
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, err, "ioctl TUNSETIFF " + name);
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("fd", fd);
  result.Set("name", std::string(ifr.ifr_name));
  return result;
}

// writeFrames(fd, frames: Buffer[]) -> number written. One native call per batch;
// a full device queue (EAGAIN) ends the batch and the caller counts the rest as drops.
Napi::Value WriteFrames(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Array frames = info[1].As<Napi::Array>();
  uint32_t n = frames.Length();
  uint32_t written = 0;
  for (uint32_t i = 0; i < n; i++) {
    Napi::Buffer<uint8_t> b = frames.Get(i).As<Napi::Buffer<uint8_t>>();
    ssize_t r;
    do { r = write(fd, b.Data(), b.Length()); } while (r < 0 && errno == EINTR);
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINVAL || errno == EIO) break;
      return ThrowErrno(env, errno, "write tap");
    }
    written++;
  }
  return Napi::Number::New(env, written);
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  close(fd);
  return info.Env().Undefined();
}

// A reader wakes up when the TAP is readable (uv_poll on the event loop, no thread)
// and drains up to `slots` frames into one shared buffer before calling JavaScript
// once with the count; lengths go to a shared Uint32Array.
class Reader : public Napi::ObjectWrap<Reader> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Reader", {InstanceMethod("stop", &Reader::Stop)});
  }

  // new Reader(fd, buffer, lengths: Uint32Array, slotSize, onFrames(count))
  Reader(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Reader>(info) {
    Napi::Env env = info.Env();
    fd_ = info[0].As<Napi::Number>().Int32Value();
    Napi::Buffer<uint8_t> buf = info[1].As<Napi::Buffer<uint8_t>>();
    Napi::Uint32Array lengths = info[2].As<Napi::Uint32Array>();
    slot_ = info[3].As<Napi::Number>().Uint32Value();
    data_ = buf.Data();
    lengths_ = lengths.Data();
    slots_ = static_cast<uint32_t>(buf.Length() / slot_);
    if (slots_ > lengths.ElementLength()) slots_ = static_cast<uint32_t>(lengths.ElementLength());
    bufRef_ = Napi::Persistent(buf.As<Napi::Object>());
    lenRef_ = Napi::Persistent(lengths.As<Napi::Object>());
    callback_ = Napi::Persistent(info[4].As<Napi::Function>());
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    poll_ = new uv_poll_t;
    poll_->data = this;
    if (uv_poll_init(loop, poll_, fd_) != 0) {
      delete poll_;
      poll_ = nullptr;
      Napi::Error::New(env, "uv_poll_init failed").ThrowAsJavaScriptException();
      return;
    }
    uv_poll_start(poll_, UV_READABLE, OnReadable);
    Ref();  // stays alive while polling, even if JavaScript drops its handle
  }

 private:
  static void OnReadable(uv_poll_t* handle, int status, int) {
    Reader* self = static_cast<Reader*>(handle->data);
    if (status < 0) return;
    self->Drain();
  }

  void Drain() {
    uint32_t count = 0;
    while (count < slots_) {
      ssize_t r = read(fd_, data_ + static_cast<size_t>(count) * slot_, slot_);
      if (r < 0) {
        if (errno == EINTR) continue;
        break;  // EAGAIN: drained; other errors surface as EOF to JS below
      }
      if (r == 0) break;
      lengths_[count++] = static_cast<uint32_t>(r);
    }
    if (count == 0) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    callback_.MakeCallback(env.Global(), {Napi::Number::New(env, count)});
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (poll_ != nullptr) {
      uv_poll_stop(poll_);
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
      Unref();
    }
    return info.Env().Undefined();
  }

  int fd_ = -1;
  uint8_t* data_ = nullptr;
  uint32_t* lengths_ = nullptr;
  uint32_t slot_ = 0;
  uint32_t slots_ = 0;
  uv_poll_t* poll_ = nullptr;
  Napi::ObjectReference bufRef_;
  Napi::ObjectReference lenRef_;
  Napi::FunctionReference callback_;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("open", Napi::Function::New(env, Open));
  exports.Set("writeFrames", Napi::Function::New(env, WriteFrames));
  exports.Set("close", Napi::Function::New(env, Close));
  exports.Set("Reader", Reader::Init(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(ctun_tap, Init)
