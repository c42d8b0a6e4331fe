#!/usr/bin/env python3
"""VEOS stand-in: behaves like the dSPACE VEOS simulator where a tunnel matters.

The real simulator is proprietary. This stand-in (Python 3 standard library only,
because the simulator image has Python for supervisord but no Node) opens its ports
the way the real one does, so the tunnel and the deployments are exercised for real.
It runs in the foreground, under supervisord in the image.

Start-up: check the license server, open the listeners, then print exactly one line
that tools wait for:

    VEOS stand-in ready: portmapper=<port> xcp=<port> discovery=<port>

(the bound ports; a port configured as 0 is chosen by the kernel). Every other event
is one log line on stdout; errors are one line on stderr, starting "veos-standin: error:".

Port mapper, TCP 27027. Line protocol, one command per line, one answer each:
    OPEN TCP <name>   -> "OK <port>"  opens a TCP server on a port chosen at run time;
                                      it sends "HELLO <name>" on connect, then answers
                                      every line with "<name>: <line>"
    OPEN UDP <name>   -> "OK <port>"  opens a UDP server on a port chosen at run time;
                                      it answers every datagram with "<name>: " + datagram
    CLOSE TCP|UDP <name> -> "OK"      closes that server
    LIST              -> "SERVER <TCP|UDP> <name> <port>" per open server, then "END"
    QUIT              -> "BYE", then the connection closes
    anything else     -> "ERR <reason>"
  Opening a name that is already open answers its port again. Names are 1-64 of
  [A-Za-z0-9_.-]; at most 64 servers; lines longer than 1024 bytes close the connection.

XCP on Ethernet, UDP 5555. Every message is LEN (uint16 LE, payload length), CTR
(uint16 LE), payload. CONNECT (payload FF <mode>) is answered with the positive
response FF 04 00 FF B8 05 01 01 (DAQ supported, Intel byte order, MAX_CTO 255,
MAX_DTO 1464, protocol and transport layer version 1); from then on the responder is
bound to that master's address and pushes unrequested DAQ packets to it every 100 ms:
payload <odt> 00 <seq uint32 LE> <ms since CONNECT uint32 LE>, odt = seq % 4. Our CTR
starts at 0 with the CONNECT response and counts every packet we send. DISCONNECT
(FE) is answered FF and stops the push; the push also stops after 600 packets or when
the master's address reports an error. Other commands from the master get FE 20
(ERR_CMD_UNKNOWN); datagrams from anyone else are ignored while bound.

Discovery, UDP 27028, bound to 0.0.0.0 with SO_BROADCAST so broadcasts arrive: the
datagram "DISCOVER" is answered, to its sender, with one JSON object:
    {"name":..., "portmapper":27027, "product":"VEOS stand-in", "release":"2023a",
     "version":"23.1", "xcp":5555}
(release and version from the installed VERSION file).

License: DS_CMU_SERVER is "host" or "port@host" (default port 22350), as for dSPACE
and FlexNet. The stand-in connects over TCP and expects the greeting line
"DSPACE-LICENSE-STANDIN OK"; it tries 5 times, 1 s apart.

Environment (defaults in brackets):
    DS_CMU_SERVER                      license server (required)
    VEOS_STANDIN_BIND                  address of port mapper, XCP, opened servers [0.0.0.0]
    VEOS_STANDIN_DISCOVERY_BIND        address of the discovery responder [0.0.0.0]
    VEOS_STANDIN_PORTMAPPER_PORT       [27027]
    VEOS_STANDIN_XCP_PORT              [5555]
    VEOS_STANDIN_DISCOVERY_PORT        [27028]
    VEOS_STANDIN_LICENSE_ATTEMPTS      [5]
    VEOS_STANDIN_LICENSE_RETRY_DELAY_MS [1000]
    VEOS_STANDIN_XCP_DAQ_INTERVAL_MS   [100]
    VEOS_STANDIN_XCP_DAQ_COUNT         [600]

Exit codes: 0 stopped by SIGTERM/SIGINT, 1 unexpected error, 2 bad configuration (an
environment variable is not a valid value), 3 license server unreachable or not a
license server, 4 DS_CMU_SERVER not set or malformed, 5 a listener could not bind.

`veos_standin.py --describe` prints these defaults as JSON (the tests hold the
TypeScript constants against it).
"""

import asyncio
import json
import os
import re
import signal
import socket
import struct
import sys
import time

PRODUCT = "VEOS stand-in"
READY_FORMAT = "VEOS stand-in ready: portmapper={} xcp={} discovery={}"
LICENSE_GREETING = b"DSPACE-LICENSE-STANDIN OK"
DEFAULT_LICENSE_PORT = 22350

EXIT_OK, EXIT_CONFIG, EXIT_LICENSE, EXIT_NO_LICENSE_SERVER, EXIT_BIND = 0, 2, 3, 4, 5

# name -> (default, lowest, highest)
SETTINGS = {
    "VEOS_STANDIN_PORTMAPPER_PORT": (27027, 0, 65535),
    "VEOS_STANDIN_XCP_PORT": (5555, 0, 65535),
    "VEOS_STANDIN_DISCOVERY_PORT": (27028, 0, 65535),
    "VEOS_STANDIN_LICENSE_ATTEMPTS": (5, 1, 100),
    "VEOS_STANDIN_LICENSE_RETRY_DELAY_MS": (1000, 0, 60000),
    "VEOS_STANDIN_XCP_DAQ_INTERVAL_MS": (100, 1, 60000),
    "VEOS_STANDIN_XCP_DAQ_COUNT": (600, 0, 1000000),
}

NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_SERVERS = 64
MAX_LINE = 1024
XCP_CONNECT_RESPONSE = bytes([0xFF, 0x04, 0x00, 0xFF]) + struct.pack("<H", 1464) + bytes([1, 1])


class Fatal(Exception):
    """An error the user can act on: one line on stderr and a distinct exit code."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def log(event, **fields):
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    parts = [stamp, "veos-standin", event] + ["{}={}".format(k, v) for k, v in fields.items()]
    print(" ".join(parts), flush=True)


def address(addr):
    return "{}:{}".format(addr[0], addr[1])


def load_config(env):
    config = {}
    for name, (default, low, high) in SETTINGS.items():
        raw = env.get(name, "").strip()
        if raw == "":
            config[name] = default
            continue
        if not raw.isdigit() or not low <= int(raw) <= high:
            raise Fatal(EXIT_CONFIG, "{}={!r} is not a whole number from {} to {}".format(name, raw, low, high))
        config[name] = int(raw)
    config["bind"] = env.get("VEOS_STANDIN_BIND", "").strip() or "0.0.0.0"
    config["discovery_bind"] = env.get("VEOS_STANDIN_DISCOVERY_BIND", "").strip() or "0.0.0.0"
    config["license"] = parse_cmu_server(env.get("DS_CMU_SERVER", ""))
    config["license_setting"] = env.get("DS_CMU_SERVER", "").strip()
    return config


def parse_cmu_server(value):
    """'host' or 'port@host' (FlexNet style) -> (host, port)."""
    value = value.strip()
    if value == "":
        raise Fatal(EXIT_NO_LICENSE_SERVER, "DS_CMU_SERVER is not set: set it to the license server as "
                    "'host' or 'port@host' (default port {})".format(DEFAULT_LICENSE_PORT))
    port_text, at, host = value.rpartition("@")
    port = DEFAULT_LICENSE_PORT
    if at:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise Fatal(EXIT_NO_LICENSE_SERVER, "DS_CMU_SERVER={!r}: {!r} is not a port; expected 'host' or "
                        "'port@host'".format(value, port_text))
        port = int(port_text)
    host = host.strip("[]")
    if host == "" or re.search(r"[\s@/]", host):
        raise Fatal(EXIT_NO_LICENSE_SERVER, "DS_CMU_SERVER={!r} names no host; expected 'host' or "
                    "'port@host'".format(value))
    return host, port


def read_version():
    """Release and version from the VERSION file the installer puts beside bin/."""
    here = os.path.dirname(os.path.abspath(__file__))
    found = {"release": "unknown", "version": "unknown"}
    try:
        with open(os.path.join(here, os.pardir, "VERSION"), encoding="utf-8") as f:
            for line in f:
                key, sep, value = line.strip().partition("=")
                if sep and key in found:
                    found[key] = value
    except OSError:
        pass
    return found


def describe_error(e):
    if isinstance(e, socket.gaierror):
        return "cannot resolve the host name ({})".format(e.strerror)
    if e.errno:
        return os.strerror(e.errno).lower()
    return str(e)


async def check_license(host, port, setting, attempts, delay_ms, stopping):
    server = "{}:{}".format("[" + host + "]" if ":" in host else host, port)
    reason = ""
    for attempt in range(1, attempts + 1):
        # wait_for (before Python 3.12) can swallow a cancellation that arrives as the
        # connection fails; a stop must not wait for the remaining attempts.
        if stopping():
            raise asyncio.CancelledError()
        log("license check", server=server, attempt="{}/{}".format(attempt, attempts))
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 3)
            try:
                line = await asyncio.wait_for(reader.readline(), 3)
            finally:
                writer.close()
            if line.startswith(LICENSE_GREETING):
                log("license ok", server=server)
                return
            reason = "it answered {!r} instead of the license greeting".format(line[:60])
        except asyncio.TimeoutError:
            reason = "no answer within 3 s"
        except OSError as e:
            reason = describe_error(e)
        if attempt < attempts:
            await asyncio.sleep(delay_ms / 1000)
    raise Fatal(EXIT_LICENSE, "license server {} (DS_CMU_SERVER={}) unreachable after {} attempt(s) {} ms apart: {}; "
                "start the license server (or license_standin.py) and check that this host reaches it".format(
                    server, setting, attempts, delay_ms, reason))


class EchoDatagram(asyncio.DatagramProtocol):
    """A UDP server opened through the port mapper: echoes with its name in front."""

    def __init__(self, name):
        self.prefix = name.encode() + b": "

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(self.prefix + data, addr)


class PortMapper:
    def __init__(self, bind):
        self.bind = bind
        self.servers = {}  # (proto, name) -> (port, object with close())

    async def handle(self, reader, writer):
        peer = address(writer.get_extra_info("peername"))
        log("portmapper connection", peer=peer)
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # longer than the stream limit
                    writer.write(b"ERR line too long\n")
                    break
                if not line:
                    break
                answer = await self.command(line.decode("utf-8", "replace").split())
                writer.write(answer.encode())
                await writer.drain()
                if answer == "BYE\n":
                    break
        except (ConnectionError, asyncio.CancelledError):
            # Cancelled at shutdown: end quietly, since Python 3.11's stream callback
            # prints a traceback for a connection task that ends cancelled.
            pass
        finally:
            writer.close()

    async def command(self, words):
        verb = words[0].upper() if words else ""
        if verb in ("OPEN", "CLOSE") and len(words) == 3:
            proto, name = words[1].upper(), words[2]
            if proto not in ("TCP", "UDP"):
                return "ERR unknown protocol {}; expected TCP or UDP\n".format(words[1])
            if not NAME_RE.fullmatch(name):
                return "ERR bad name; expected 1-64 of A-Z a-z 0-9 _ . -\n"
            return await (self.open if verb == "OPEN" else self.close)(proto, name)
        if verb == "LIST" and len(words) == 1:
            lines = ["SERVER {} {} {}\n".format(p, n, port) for (p, n), (port, _) in sorted(self.servers.items())]
            return "".join(lines) + "END\n"
        if verb == "QUIT" and len(words) == 1:
            return "BYE\n"
        return "ERR unknown command; expected OPEN TCP|UDP <name>, CLOSE TCP|UDP <name>, LIST or QUIT\n"

    async def open(self, proto, name):
        if (proto, name) in self.servers:
            return "OK {}\n".format(self.servers[(proto, name)][0])
        if len(self.servers) >= MAX_SERVERS:
            return "ERR too many servers (at most {})\n".format(MAX_SERVERS)
        loop = asyncio.get_running_loop()
        try:
            if proto == "TCP":
                server = await asyncio.start_server(lambda r, w: self.echo(name, r, w), self.bind, 0, limit=MAX_LINE)
                port = server.sockets[0].getsockname()[1]
            else:
                server, _ = await loop.create_datagram_endpoint(lambda: EchoDatagram(name), local_addr=(self.bind, 0))
                port = server.get_extra_info("sockname")[1]
        except OSError as e:
            return "ERR cannot bind: {}\n".format(e.strerror or e)
        self.servers[(proto, name)] = (port, server)
        log("server opened", proto=proto, name=name, port=port)
        return "OK {}\n".format(port)

    async def close(self, proto, name):
        entry = self.servers.pop((proto, name), None)
        if entry is None:
            return "ERR no {} server named {}\n".format(proto, name)
        entry[1].close()
        log("server closed", proto=proto, name=name, port=entry[0])
        return "OK\n"

    async def echo(self, name, reader, writer):
        log("server connection", proto="TCP", name=name, peer=address(writer.get_extra_info("peername")))
        try:
            writer.write("HELLO {}\n".format(name).encode())
            while True:
                line = await reader.readline()
                if not line:
                    break
                writer.write(name.encode() + b": " + line.rstrip(b"\r\n") + b"\n")
                await writer.drain()
        except (ConnectionError, ValueError, asyncio.CancelledError):  # cancelled: see handle()
            pass
        finally:
            writer.close()

    def close_all(self):
        for _, server in self.servers.values():
            server.close()
        self.servers.clear()


def split_xcp(data):
    """The messages of one XCP-on-Ethernet datagram, or None if it is malformed."""
    messages, offset = [], 0
    while offset < len(data) and len(messages) < 64:
        if offset + 4 > len(data):
            return None
        length, _ = struct.unpack_from("<HH", data, offset)
        if length == 0 or offset + 4 + length > len(data):
            return None
        messages.append(data[offset + 4:offset + 4 + length])
        offset += 4 + length
    return messages


class Xcp(asyncio.DatagramProtocol):
    def __init__(self, interval_ms, count):
        self.interval = interval_ms / 1000
        self.count = count
        self.master = None
        self.ctr = 0
        self.pusher = None

    def connection_made(self, transport):
        self.transport = transport

    def send(self, payload):
        self.transport.sendto(struct.pack("<HH", len(payload), self.ctr) + payload, self.master)
        self.ctr = (self.ctr + 1) & 0xFFFF

    def datagram_received(self, data, addr):
        messages = split_xcp(data)
        if messages is None:
            log("xcp malformed", peer=address(addr), bytes=len(data))
            return
        for payload in messages:
            self.command(payload, addr)

    def command(self, payload, addr):
        if self.master is not None and addr != self.master:
            log("xcp ignored", peer=address(addr), reason="bound to " + address(self.master))
            return
        if payload[0] == 0xFF:
            self.release(None)
            self.master, self.ctr = addr, 0
            log("xcp connect", master=address(addr))
            self.send(XCP_CONNECT_RESPONSE)
            self.pusher = asyncio.ensure_future(self.push())
        elif self.master is None:
            log("xcp ignored", peer=address(addr), reason="not connected")
        elif payload[0] == 0xFE:
            self.send(b"\xff")
            self.release("disconnect")
        else:
            self.send(b"\xfe\x20")

    async def push(self):
        start = time.monotonic()
        for seq in range(self.count):
            await asyncio.sleep(self.interval)
            elapsed = int((time.monotonic() - start) * 1000) & 0xFFFFFFFF
            self.send(struct.pack("<BBII", seq % 4, 0, seq, elapsed))
        self.pusher = None
        self.release("daq limit of {} packets".format(self.count))

    def release(self, reason):
        if self.pusher is not None:
            self.pusher.cancel()
            self.pusher = None
        if self.master is not None and reason is not None:
            log("xcp released", master=address(self.master), reason=reason)
        self.master = None

    def error_received(self, exc):
        # ICMP port unreachable from a master that went away: stop pushing to it.
        self.release("error: {}".format(exc.strerror or exc))


class Discovery(asyncio.DatagramProtocol):
    def __init__(self, answer):
        self.answer = answer

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        if data.strip() != b"DISCOVER":
            log("discovery ignored", peer=address(addr), bytes=len(data))
            return
        log("discovery answered", peer=address(addr))
        self.transport.sendto(self.answer(), addr)


async def listen(what, variable, bind, port, start):
    try:
        return await start()
    except OSError as e:
        raise Fatal(EXIT_BIND, "cannot listen for {} on {}:{} ({}): {}".format(
            what, bind, port, variable, e.strerror or e))


async def serve(config, stopping):
    await check_license(*config["license"], config["license_setting"], config["VEOS_STANDIN_LICENSE_ATTEMPTS"],
                        config["VEOS_STANDIN_LICENSE_RETRY_DELAY_MS"], stopping)
    loop = asyncio.get_running_loop()
    bind, discovery_bind = config["bind"], config["discovery_bind"]
    mapper = PortMapper(bind)
    xcp = None
    closers = []
    try:
        port = config["VEOS_STANDIN_PORTMAPPER_PORT"]
        server = await listen("the port mapper (TCP)", "VEOS_STANDIN_PORTMAPPER_PORT", bind, port,
                              lambda: asyncio.start_server(mapper.handle, bind, port, limit=MAX_LINE))
        closers.append(server)
        mapper_port = server.sockets[0].getsockname()[1]

        port = config["VEOS_STANDIN_XCP_PORT"]
        xcp = Xcp(config["VEOS_STANDIN_XCP_DAQ_INTERVAL_MS"], config["VEOS_STANDIN_XCP_DAQ_COUNT"])
        transport, _ = await listen("XCP (UDP)", "VEOS_STANDIN_XCP_PORT", bind, port,
                                    lambda: loop.create_datagram_endpoint(lambda: xcp, local_addr=(bind, port)))
        closers.append(transport)
        xcp_port = transport.get_extra_info("sockname")[1]

        info = dict(read_version(), product=PRODUCT, name=socket.gethostname(), portmapper=mapper_port, xcp=xcp_port)
        answer = lambda: json.dumps(info, sort_keys=True, separators=(",", ":")).encode()  # noqa: E731
        port = config["VEOS_STANDIN_DISCOVERY_PORT"]
        transport, _ = await listen("discovery (UDP)", "VEOS_STANDIN_DISCOVERY_PORT", discovery_bind, port,
                                    lambda: loop.create_datagram_endpoint(
                                        lambda: Discovery(answer), local_addr=(discovery_bind, port),
                                        allow_broadcast=True))
        closers.append(transport)
        discovery_port = transport.get_extra_info("sockname")[1]

        if stopping():  # a stop that a wait_for swallowed on the way here
            raise asyncio.CancelledError()
        print(READY_FORMAT.format(mapper_port, xcp_port, discovery_port), flush=True)
        await asyncio.Future()  # until a signal cancels us
    finally:
        if xcp is not None:
            xcp.release(None)
        mapper.close_all()
        for closer in closers:
            closer.close()


async def run(config):
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    received = []

    def stop(signame):
        received.append(signame)
        main.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, sig.name)
    try:
        await serve(config, lambda: bool(received))
    except asyncio.CancelledError:
        if not received:
            raise
    log("stopped", signal=received[0])
    return EXIT_OK


def describe():
    return {
        "product": PRODUCT,
        "ready": READY_FORMAT,
        "licenseGreeting": LICENSE_GREETING.decode(),
        "defaultLicensePort": DEFAULT_LICENSE_PORT,
        "settings": {name: default for name, (default, _, _) in SETTINGS.items()},
        "exitCodes": {"ok": EXIT_OK, "config": EXIT_CONFIG, "license": EXIT_LICENSE,
                      "noLicenseServer": EXIT_NO_LICENSE_SERVER, "bind": EXIT_BIND},
    }


def main(argv):
    if argv[1:] == ["--describe"]:
        print(json.dumps(describe(), indent=2, sort_keys=True))
        return EXIT_OK
    if len(argv) > 1:
        print("usage: veos_standin.py [--describe]  (configured by environment variables)", file=sys.stderr)
        return EXIT_CONFIG
    try:
        return asyncio.run(run(load_config(os.environ)))
    except Fatal as e:
        print("veos-standin: error: {}".format(e), file=sys.stderr, flush=True)
        return e.code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
