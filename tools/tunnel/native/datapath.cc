// See datapath.h. Moved here from tap.cc's udpSend and writeFrames unchanged in what
// they do, so the fast path and JavaScript share one implementation of each.
#include "datapath.h"

#include "wire.h"

#include <errno.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <unordered_set>
#include <vector>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

namespace ctun {
namespace datapath {

namespace {

// Sockets whose kernel or route refused a GSO send (EIO: no checksum offload on the
// way out); they send one datagram per message from then on.
std::unordered_set<int> g_noGso;

constexpr unsigned kMaxBatch = 256;
// UDP GSO: a run of equal-sized datagrams to one peer leaves as ONE message with a
// UDP_SEGMENT size; the kernel cuts it into datagrams after the UDP/IP stack (or
// not at all, on to a receiver with GRO), so the stack is walked once per run, not
// once per datagram. The wire is unchanged. Runs stay below 64 KiB and 64 segments.
constexpr size_t kGsoMaxBytes = 65000;
constexpr unsigned kGsoMaxSegments = 64;

}  // namespace

void AllowGso(int fd, bool allowed) {
  if (allowed) g_noGso.erase(fd);
  else g_noGso.insert(fd);
}

void Forget(int fd) { g_noGso.erase(fd); }

int64_t SendDatagrams(int fd, const Frame* list, uint32_t n, uint32_t ip, uint32_t port, bool frames) {
  namespace wire = ctun::wire;
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(ip);
  sa.sin_port = htons(static_cast<uint16_t>(port));
  uint32_t sent = 0;
  struct mmsghdr msgs[kMaxBatch];
  struct iovec iov[kMaxBatch][2];
  uint8_t headers[kMaxBatch][wire::kHeaderSize];
  uint32_t segments[kMaxBatch];
  alignas(struct cmsghdr) char control[kMaxBatch][CMSG_SPACE(sizeof(uint16_t))];
  while (sent < n) {
    uint32_t batch = n - sent < kMaxBatch ? n - sent : kMaxBatch;
    // The datagrams of this batch, in place: iov[i] is datagram i (header + frame).
    for (uint32_t i = 0; i < batch; i++) {
      const Frame& b = list[sent + i];
      size_t len = b.len;
      if (frames) {
        headers[i][0] = wire::kTypeData;
        headers[i][1] = 0;
        headers[i][2] = static_cast<uint8_t>(len >> 8);
        headers[i][3] = static_cast<uint8_t>(len);
        iov[i][0] = {headers[i], wire::kHeaderSize};
        iov[i][1] = {const_cast<uint8_t*>(b.data), len};
      } else {
        iov[i][0] = {const_cast<uint8_t*>(b.data), len};
        iov[i][1] = {nullptr, 0};
      }
    }
    // Group runs of equal size into one message each; iov is contiguous, so a run
    // is iov[first .. first+k) seen as 2k entries.
    bool gso = g_noGso.count(fd) == 0;
    uint32_t count = 0;
    for (uint32_t i = 0; i < batch;) {
      size_t size = iov[i][0].iov_len + iov[i][1].iov_len;
      uint32_t k = 1;
      while (gso && i + k < batch && k < kGsoMaxSegments && (k + 1) * size <= kGsoMaxBytes && iov[i + k][0].iov_len + iov[i + k][1].iov_len == size) k++;
      struct msghdr& h = msgs[count].msg_hdr;
      memset(&msgs[count], 0, sizeof msgs[count]);
      if (ip != 0) {
        h.msg_name = &sa;
        h.msg_namelen = sizeof sa;
      }
      h.msg_iov = iov[i];
      h.msg_iovlen = 2 * k;
      if (k > 1) {
        h.msg_control = control[count];
        h.msg_controllen = CMSG_SPACE(sizeof(uint16_t));
        struct cmsghdr* c = CMSG_FIRSTHDR(&h);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t seg = static_cast<uint16_t>(size);
        memcpy(CMSG_DATA(c), &seg, sizeof seg);
      }
      segments[count++] = k;
      i += k;
    }
    int r;
    do { r = sendmmsg(fd, msgs, count, MSG_DONTWAIT); } while (r < 0 && errno == EINTR);
    if (r < 0) {
      if (gso && count < batch && (errno == EIO || errno == EINVAL || errno == ENOPROTOOPT)) {
        g_noGso.insert(fd);  // this path cannot segment: send one datagram per message
        continue;
      }
      // A full buffer drops the rest, as a NIC does; ICMP-reported errors
      // (ECONNREFUSED: no server right now) are the keepalive's business.
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS || errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH || errno == EMSGSIZE) break;
      return -errno;
    }
    for (int m = 0; m < r; m++) sent += segments[m];
    if (static_cast<uint32_t>(r) < count) break;
  }
  return sent;
}

int64_t WriteTap(int fd, const Frame* list, uint32_t n, bool offload) {
  uint32_t written = 0;
  if (offload) {
    std::vector<uint8_t> scratch;
    for (const offload::Write& w : offload::Coalesce(list, n, scratch)) {
      ssize_t r;
      do { r = writev(fd, w.iov.data(), static_cast<int>(w.iov.size())); } while (r < 0 && errno == EINTR);
      if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINVAL || errno == EIO) break;
        return -errno;
      }
      written += w.frames;
    }
    return written;
  }
  for (uint32_t i = 0; i < n; i++) {
    ssize_t r;
    do { r = write(fd, list[i].data, list[i].len); } while (r < 0 && errno == EINTR);
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINVAL || errno == EIO) break;
      return -errno;
    }
    written++;
  }
  return written;
}

}  // namespace datapath
}  // namespace ctun
