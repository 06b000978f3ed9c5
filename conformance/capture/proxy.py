#!/usr/bin/env python3
"""Recording TCP proxy for Hot Rod wire captures (stdlib only).

Usage:
  proxy.py --listen 127.0.0.1:11422 --target 127.0.0.1:11322 --control 127.0.0.1:11499 \
           --out out/capture.jsonl [--server-label NAME] [--listen ... --target ... pairs]

Several listen/target pairs may be given (matched in order); all share one output file, one
connection counter and one control port. Output: one JSON object per line:

  {"type":"open","conn":N,"port":LISTEN_PORT}
  {"type":"data","conn":N,"dir":"c2s"|"s2c","hex":"..."}   every chunk, in arrival order
  {"type":"close","conn":N,"dir":"c2s"|"s2c"}              EOF/error on that direction
  {"type":"scenario","name":"...","client":"...","server":"..."}

Control protocol (one request per line, each answered with "ok\\n"):
  scenario <client-id> <name>   record a scenario marker
  sync                          answer once everything received so far is in the file
  quit                          stop the proxy
"""
import argparse
import asyncio
import json
import signal
import sys


class Recorder:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1, encoding="utf-8")
        self.next_conn = 1

    def write(self, rec):
        if self.f.closed:
            return
        # Records are written synchronously from the single event-loop thread, so the file
        # order is the order in which the loop observed the events.
        self.f.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")

    def flush(self):
        self.f.flush()

    def close(self):
        self.f.flush()
        self.f.close()


async def pump(rec, conn, direction, reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            rec.write({"type": "data", "conn": conn, "dir": direction, "hex": data.hex()})
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError, asyncio.CancelledError):
        pass
    finally:
        rec.write({"type": "close", "conn": conn, "dir": direction})
        rec.flush()
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            pass


def make_handler(rec, target_host, target_port, listen_port):
    async def handle(c_reader, c_writer):
        conn = rec.next_conn
        rec.next_conn += 1
        try:
            s_reader, s_writer = await asyncio.wait_for(
                asyncio.open_connection(target_host, target_port), 10)
        except (OSError, asyncio.TimeoutError) as e:
            rec.write({"type": "open", "conn": conn, "port": listen_port, "error": str(e)})
            rec.flush()
            c_writer.close()
            return
        rec.write({"type": "open", "conn": conn, "port": listen_port})
        rec.flush()
        await asyncio.gather(
            pump(rec, conn, "c2s", c_reader, s_writer),
            pump(rec, conn, "s2c", s_reader, c_writer),
        )
        for w in (c_writer, s_writer):
            try:
                w.close()
            except OSError:
                pass

    return handle


def make_control(rec, server_label, stop):
    async def handle(reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                parts = line.decode("utf-8", "replace").strip().split(" ", 2)
                cmd = parts[0]
                if cmd == "scenario" and len(parts) == 3:
                    # Let data already sitting in socket buffers be read and logged first.
                    await asyncio.sleep(0.05)
                    rec.write({"type": "scenario", "name": parts[2], "client": parts[1],
                               "server": server_label})
                    rec.flush()
                    writer.write(b"ok\n")
                elif cmd == "sync":
                    # Give the loop several turns so every readable socket is drained.
                    for _ in range(5):
                        await asyncio.sleep(0.02)
                    rec.flush()
                    writer.write(b"ok\n")
                elif cmd == "quit":
                    rec.flush()
                    writer.write(b"ok\n")
                    await writer.drain()
                    stop.set()
                    break
                else:
                    writer.write(b"error unknown command\n")
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    return handle


def hostport(s):
    host, _, port = s.rpartition(":")
    return host or "127.0.0.1", int(port)


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", action="append", required=True, type=hostport)
    ap.add_argument("--target", action="append", required=True, type=hostport)
    ap.add_argument("--control", required=True, type=hostport)
    ap.add_argument("--out", required=True)
    ap.add_argument("--server-label", default="reference")
    args = ap.parse_args()
    if len(args.listen) != len(args.target):
        ap.error("--listen and --target must be given the same number of times")

    rec = Recorder(args.out)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    servers = []
    for (lh, lp), (th, tp) in zip(args.listen, args.target):
        servers.append(await asyncio.start_server(make_handler(rec, th, tp, lp), lh, lp))
    ch, cp = args.control
    servers.append(await asyncio.start_server(make_control(rec, args.server_label, stop), ch, cp))
    print("PROXY READY", flush=True)
    await stop.wait()
    for s in servers:
        s.close()
    rec.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
