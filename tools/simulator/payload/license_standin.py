#!/usr/bin/env python3
"""License stand-in: answers the VEOS stand-in's license check, for tests and the demo.

A TCP server (default 0.0.0.0:22350, the dSPACE license server port) that writes
the greeting line "DSPACE-LICENSE-STANDIN OK" to every connection and closes it. It
licenses nothing; it only lets the simulator's start-up check pass, the way a
reachable dSPACE license server would.

    license_standin.py [--port PORT] [--bind ADDRESS]

PORT defaults to $VEOS_STANDIN_LICENSE_PORT or 22350 (0: chosen by the kernel),
ADDRESS to $VEOS_STANDIN_LICENSE_BIND or 0.0.0.0. Once listening it prints exactly

    License stand-in ready: port=<port>

then one log line per connection. Exit codes: 0 stopped by SIGTERM/SIGINT, 2 bad
usage, 5 the port could not be bound.
"""

import argparse
import asyncio
import os
import signal
import sys
import time

GREETING = b"DSPACE-LICENSE-STANDIN OK\n"
READY_FORMAT = "License stand-in ready: port={}"
DEFAULT_PORT = 22350
EXIT_OK, EXIT_USAGE, EXIT_BIND = 0, 2, 5


def log(event, **fields):
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    parts = [stamp, "license-standin", event] + ["{}={}".format(k, v) for k, v in fields.items()]
    print(" ".join(parts), flush=True)


def port_number(text):
    if not text.strip().isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError("{!r} is not a port (0-65535)".format(text))
    return int(text)


async def greet(reader, writer):
    peer = writer.get_extra_info("peername")
    log("license connection", peer="{}:{}".format(peer[0], peer[1]))
    try:
        writer.write(GREETING)
        await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        # Cancelled at shutdown: end quietly (Python 3.11 prints a traceback otherwise).
        pass
    finally:
        writer.close()


async def serve(bind, port):
    loop = asyncio.get_running_loop()
    stopped = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda name=sig.name: stopped.done() or stopped.set_result(name))
    try:
        server = await asyncio.start_server(greet, bind, port)
    except OSError as e:
        print("license-standin: error: cannot listen on {}:{}: {}".format(bind, port, e.strerror or e),
              file=sys.stderr, flush=True)
        return EXIT_BIND
    print(READY_FORMAT.format(server.sockets[0].getsockname()[1]), flush=True)
    name = await stopped
    server.close()
    log("stopped", signal=name)
    return EXIT_OK


def main():
    parser = argparse.ArgumentParser(description="License stand-in for the VEOS stand-in simulator.")
    parser.add_argument("--port", type=port_number, default=os.environ.get("VEOS_STANDIN_LICENSE_PORT") or str(DEFAULT_PORT),
                        help="TCP port (default $VEOS_STANDIN_LICENSE_PORT or %d; 0 picks a free one)" % DEFAULT_PORT)
    parser.add_argument("--bind", default=os.environ.get("VEOS_STANDIN_LICENSE_BIND") or "0.0.0.0",
                        help="address to listen on (default $VEOS_STANDIN_LICENSE_BIND or 0.0.0.0)")
    args = parser.parse_args()  # exits with 2 on bad usage
    return asyncio.run(serve(args.bind, args.port))


if __name__ == "__main__":
    sys.exit(main())
