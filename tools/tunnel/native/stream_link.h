// A TCP link's connection driven by the addon (plain TCP only; TLS stays in Node):
// length-prefixed messages (PROTOCOL.md) read and written on the event loop (uv_poll
// on a dup of the socket's fd, no thread), so that the data fast path (fastpath.h)
// can move a request/response frame between the TAP and the connection without a
// JavaScript call, as it does for UDP datagrams.
//
// JavaScript hands the connection over once its session is up (link/tcp.ts): from
// then on every byte in and out goes through here. Incoming Data messages go to the
// attached forwarder first, message by message, as one-message datagrams from the
// connection's peer address; whatever it does not take (control messages, frames its
// switch copy would not forward) reaches JavaScript as the bytes of whole messages, in
// order, once per wake-up. A header that is not ctun's stops the parsing here: that
// byte and everything after it go to JavaScript, whose decoder reports the error and
// closes the connection, as before the handover.
//
// Outgoing bytes (JavaScript's messages, the forwarder's frames) share one queue,
// bounded like the Node socket's was: a message or frame that would pass the bound is
// dropped, never a part of one, so the stream stays whole.
//
// A sealed stream (TCP --tls after the switch, PROTOCOL.md "Sealed stream") carries
// records instead: length (u16 BE) | a sealed datagram of whole messages, keyed from
// the TLS session like sealed UDP's (sealer.h). Each record is opened here; its
// messages then go the way plain ones do, so JavaScript sees plaintext messages only
// and writes them in plaintext. A record that does not open closes the connection (a
// byte stream cannot skip one). The server's end sends nothing until the client's
// first record has opened: only then is the client's TLS reader surely stopped, so no
// record can reach it. The client's end therefore opens with an empty record.
#pragma once
#include <napi.h>
#include <uv.h>

#include <stdint.h>

#include <memory>
#include <string>
#include <vector>

#include "aead.h"
#include "busy_poll.h"
#include "fastpath.h"
#include "sealer.h"

namespace ctun {
namespace fastpath {

class StreamLink : public Napi::ObjectWrap<StreamLink> {
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::FunctionReference constructor;

  // new StreamLink(fd, peerIp, peerPort, maxQueueBytes, maxPayload, leftover: Buffer,
  //   onBytes(bytes: Buffer), onClosed(reason: string, sealFailure?: number)
  //   [, sealer: Sealer, role: 'client' | 'server']); fd is dup'ed (the caller keeps
  // and later closes its own), leftover: bytes JavaScript read but not decoded. With
  // a sealer the stream is sealed; sealFailure is the Sealer::Failure that closed it.
  explicit StreamLink(const Napi::CallbackInfo& info);
  ~StreamLink() override;

  // Frames to the peer as Data messages, tallied (beyond the queue bound: drops).
  void SendFrames(const Frame* frames, uint32_t n, Tally& tally);

 private:
  // write(bytes): queues whole messages; false (nothing queued) past the bound or once closed.
  Napi::Value Write(const Napi::CallbackInfo& info);
  // queued(): bytes waiting for the socket.
  Napi::Value Queued(const Napi::CallbackInfo& info);
  // attach(fastPath | undefined)
  Napi::Value Attach(const Napi::CallbackInfo& info);
  // close(): stops polling and closes the dup; nothing more is read, written or reported.
  Napi::Value Close(const Napi::CallbackInfo& info);

  static void OnEvents(uv_poll_t* handle, int status, int events);
  void Readable();
  // Takes the whole messages at the front of in_: Data to the forwarder when it takes
  // them, the rest appended to toJs_; returns the bytes consumed.
  size_t Parse();
  void Flush();
  void Watch();
  void Fail(const std::string& reason);
  void StopPolling();
  void DeliverBytes();
  // Frees the buffers (the connection is done).
  void Release();
  // Whether anything may still be queued: open, and no write has failed.
  bool Sendable() const;
  // Sealed: the whole records at the front of in_ (as Parse); a record that does not
  // open sets sealFailure_ and stops.
  size_t ParseSealed();
  // One message (whole, in place) to the forwarder or to JavaScript.
  void Route(Forwarder* f, uint8_t* m, size_t whole);
  // Sealed: seals the parts (`plain` bytes of whole messages) as one record at the
  // queue's end; false (nothing queued) past the bound or once the counter is spent.
  bool QueueRecord(const aead::Part* parts, size_t n, size_t plain);
  // Sealed write(bytes): whole messages as records, all or nothing against the bound.
  bool WriteSealed(const uint8_t* d, size_t len);

  int fd_ = -1;
  uint32_t peerIp_, peerPort_;
  size_t maxQueue_;
  size_t maxPayload_;
  bool raw_ = false;     // a bad header was seen: everything goes to JavaScript
  bool failed_ = false;  // read or write failed, or EOF: onClosed was called
  bool writable_ = false;  // polling for writable too
  bool writeBroken_ = false;  // a write failed: the reader reports the end
  uv_poll_t* poll_ = nullptr;
  busypoll::SpinBudget spin_;
  std::unique_ptr<uint8_t[]> in_;
  size_t inLen_ = 0;
  std::vector<uint8_t> out_;
  size_t outStart_ = 0;
  std::vector<uint8_t> toJs_;
  AttachedForwarder fast_;
  Napi::FunctionReference onBytes_, onClosed_;
  Sealer* sealer_ = nullptr;
  Napi::ObjectReference sealerRef_;
  bool holding_ = false;  // sealed server end: no writes before the client's first record
  int sealFailure_ = 0;   // Sealer::Failure of the record that closed the stream
  std::vector<aead::Part> parts_;  // SendFrames' scratch: a record's pieces
  std::vector<uint8_t> headers_;   // and its Data headers
};

// The stream a JavaScript object wraps, or nullptr.
StreamLink* StreamLinkOf(Napi::Value value);

}  // namespace fastpath
}  // namespace ctun
