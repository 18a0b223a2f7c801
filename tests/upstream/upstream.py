#!/usr/bin/python3
"""A small HTTP/1.1 upstream server for Tandem's integration tests and
benchmarks. Standard library only (asyncio).

    upstream.py [--port 0] [--host 127.0.0.1] [--name NAME] [--fixed]

The first line on stdout is the bound port. Every response carries an
`x-upstream: NAME` header so tests can tell targets apart. Keep-alive is the
default for HTTP/1.1 (and for HTTP/1.0 with `Connection: keep-alive`).

Endpoints:
  /echo               JSON: method, path, query, version, headers (list of
                      [name, value] in arrival order), body (text), body_len;
                      Content-Length and chunked request bodies
  /slow?ms=N          answers "slow\\n" after N ms
  /chunked?n=K&size=S chunked response of K chunks of S bytes each
  /bytes?n=N          N bytes with Content-Length, streamed in bounded memory
  /die                headers (Content-Length 1000) then 10 bytes, then close
  /status/N           answers with status N (body "status N\\n")
  /sink               reads any body without keeping it; JSON {"bytes": n}
  /ws                 WebSocket (RFC 6455) handshake, then echoes frames
  anything else       404
With --fixed every request gets a fixed 200 "ok\\n" response (benchmarks).
"""
import argparse
import asyncio
import base64
import hashlib
import json
import signal
import sys
import urllib.parse

MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 200
MAX_ECHO_BODY = 16 * 1024 * 1024
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
REASONS = {
    100: "Continue", 101: "Switching Protocols", 200: "OK", 201: "Created",
    202: "Accepted", 204: "No Content", 301: "Moved Permanently", 302: "Found",
    304: "Not Modified", 400: "Bad Request", 401: "Unauthorized",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    408: "Request Timeout", 413: "Content Too Large", 429: "Too Many Requests",
    500: "Internal Server Error", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout",
}


class BadRequest(Exception):
    pass


class Request:
    def __init__(self, method, target, version, headers):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers  # list of (name, value), names as sent
        parts = urllib.parse.urlsplit(target)
        self.path = parts.path
        self.query = urllib.parse.parse_qs(parts.query)
        self.raw_query = parts.query

    def header(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def tokens(self, name):
        out = []
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                out += [t.strip().lower() for t in v.split(",") if t.strip()]
        return out

    def qint(self, key, default):
        try:
            return int(self.query.get(key, [default])[0])
        except ValueError:
            raise BadRequest(f"bad integer for {key}")


async def read_head(reader):
    """Reads a request head; returns None on a clean EOF between requests."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if not e.partial.strip():
            return None
        raise BadRequest("truncated head")
    except asyncio.LimitOverrunError:
        raise BadRequest("head too large")
    lines = head[:-4].decode("latin-1").split("\r\n")
    # Tolerate empty lines before the request line (RFC 9112 2.2).
    while lines and lines[0] == "":
        lines.pop(0)
    if not lines:
        return None
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest("bad request line")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest("bad header line")
        headers.append((name, value.strip()))
        if len(headers) > MAX_HEADERS:
            raise BadRequest("too many headers")
    return Request(parts[0], parts[1], parts[2], headers)


async def body_chunks(reader, req):
    """Yields the request body in pieces (Content-Length or chunked)."""
    te = req.tokens("transfer-encoding")
    if te:
        if te[-1] != "chunked":
            raise BadRequest("unsupported transfer-encoding")
        while True:
            line = await reader.readuntil(b"\r\n")
            size_text = line[:-2].split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise BadRequest("bad chunk size")
            if size == 0:
                # Trailers, up to the empty line.
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return
            while size > 0:
                data = await reader.read(min(size, 65536))
                if not data:
                    raise BadRequest("truncated chunk")
                size -= len(data)
                yield data
            if await reader.readexactly(2) != b"\r\n":
                raise BadRequest("bad chunk end")
        return
    cl = req.header("content-length")
    if cl is None:
        return
    try:
        left = int(cl)
    except ValueError:
        raise BadRequest("bad content-length")
    if left < 0:
        raise BadRequest("bad content-length")
    while left > 0:
        data = await reader.read(min(left, 65536))
        if not data:
            raise BadRequest("truncated body")
        left -= len(data)
        yield data


class Server:
    def __init__(self, name, fixed):
        self.name = name
        self.fixed = fixed
        self.fixed_response = self.head(200, {"content-type": "text/plain", "content-length": "3"}) + b"ok\n"

    def head(self, status, headers):
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}", f"x-upstream: {self.name}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def handle(self, reader, writer):
        try:
            while True:
                req = await read_head(reader)
                if req is None:
                    break
                keep = self.keep_alive(req)
                if (req.header("expect") or "").lower() == "100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                if self.fixed:
                    async for _ in body_chunks(reader, req):
                        pass
                    writer.write(self.fixed_response if keep else self.head(
                        200, {"content-length": "3", "connection": "close"}) + b"ok\n")
                    await writer.drain()
                else:
                    keep = await self.dispatch(req, reader, writer, keep)
                if not keep:
                    break
        except BadRequest as e:
            body = f"bad request: {e}\n".encode()
            writer.write(self.head(400, {"content-length": str(len(body)), "connection": "close"}) + body)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            try:
                await writer.drain()
            except ConnectionError:
                pass
            writer.close()

    @staticmethod
    def keep_alive(req):
        conn = req.tokens("connection")
        if "close" in conn:
            return False
        if req.version == "HTTP/1.0":
            return "keep-alive" in conn
        return True

    async def send(self, writer, req, status, body, keep, ctype="text/plain", extra=None):
        headers = {"content-type": ctype, "content-length": str(len(body))}
        if extra:
            headers.update(extra)
        if not keep:
            headers["connection"] = "close"
        elif req.version == "HTTP/1.0":
            headers["connection"] = "keep-alive"
        writer.write(self.head(status, headers))
        if req.method != "HEAD":
            writer.write(body)
        await writer.drain()

    async def dispatch(self, req, reader, writer, keep):
        path = req.path
        if path == "/echo":
            body = bytearray()
            async for piece in body_chunks(reader, req):
                if len(body) + len(piece) > MAX_ECHO_BODY:
                    raise BadRequest("echo body too large")
                body += piece
            out = {
                "method": req.method,
                "path": path,
                "target": req.target,
                "query": req.raw_query,
                "version": req.version,
                "headers": [[k, v] for k, v in req.headers],
                "body": body.decode("utf-8", "replace"),
                "body_len": len(body),
                "upstream": self.name,
            }
            await self.send(writer, req, 200, json.dumps(out).encode(), keep, "application/json")
            return keep
        # Other endpoints ignore the request body but must consume it.
        if path == "/sink":
            n = 0
            async for piece in body_chunks(reader, req):
                n += len(piece)
            await self.send(writer, req, 200, json.dumps({"bytes": n}).encode(), keep, "application/json")
            return keep
        if path == "/ws" and "websocket" in req.tokens("upgrade"):
            await self.websocket(req, reader, writer)
            return False
        async for _ in body_chunks(reader, req):
            pass
        if path == "/slow":
            await asyncio.sleep(req.qint("ms", 1000) / 1000.0)
            await self.send(writer, req, 200, b"slow\n", keep)
        elif path == "/chunked":
            n, size = req.qint("n", 4), req.qint("size", 16)
            hdr = {"content-type": "application/octet-stream", "transfer-encoding": "chunked"}
            if not keep:
                hdr["connection"] = "close"
            writer.write(self.head(200, hdr))
            if req.method != "HEAD":
                piece = b"x" * size
                for _ in range(n):
                    writer.write(b"%x\r\n%s\r\n" % (size, piece))
                    await writer.drain()
                writer.write(b"0\r\n\r\n")
            await writer.drain()
        elif path == "/bytes":
            n = req.qint("n", 1024)
            hdr = {"content-type": "application/octet-stream", "content-length": str(n)}
            if not keep:
                hdr["connection"] = "close"
            writer.write(self.head(200, hdr))
            if req.method != "HEAD":
                block = b"\0" * 65536
                while n > 0:
                    k = min(n, len(block))
                    writer.write(block if k == len(block) else block[:k])
                    n -= k
                    await writer.drain()
            await writer.drain()
        elif path == "/die":
            writer.write(self.head(200, {"content-type": "text/plain", "content-length": "1000"}))
            writer.write(b"0123456789")
            await writer.drain()
            return False
        elif path.startswith("/status/"):
            try:
                status = int(path[len("/status/"):])
            except ValueError:
                status = 0
            if not 100 <= status <= 599:
                await self.send(writer, req, 400, b"bad status\n", keep)
            elif status in (204, 304) or status < 200:
                hdr = {} if keep else {"connection": "close"}
                writer.write(self.head(status, hdr))
                await writer.drain()
            else:
                await self.send(writer, req, status, f"status {status}\n".encode(), keep)
        else:
            await self.send(writer, req, 404, b"not found\n", keep)
        return keep

    async def websocket(self, req, reader, writer):
        key = req.header("sec-websocket-key")
        if not key:
            raise BadRequest("missing sec-websocket-key")
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        writer.write(self.head(101, {"upgrade": "websocket", "connection": "Upgrade",
                                     "sec-websocket-accept": accept}))
        await writer.drain()
        while True:
            b0, b1 = await reader.readexactly(2)
            opcode = b0 & 0x0F
            masked = b1 & 0x80
            length = b1 & 0x7F
            if length == 126:
                length = int.from_bytes(await reader.readexactly(2), "big")
            elif length == 127:
                length = int.from_bytes(await reader.readexactly(8), "big")
            if length > MAX_ECHO_BODY:
                return
            mask = await reader.readexactly(4) if masked else b"\0\0\0\0"
            data = bytearray(await reader.readexactly(length))
            for i in range(length):
                data[i] ^= mask[i & 3]
            if opcode == 0x9:  # ping -> pong
                opcode = 0xA
            elif opcode == 0xA:  # unsolicited pong: ignore
                continue
            # Server frames are unmasked; FIN and opcode kept as received.
            hdr = bytes([(b0 & 0x80) | opcode])
            if length < 126:
                hdr += bytes([length])
            elif length < 65536:
                hdr += bytes([126]) + length.to_bytes(2, "big")
            else:
                hdr += bytes([127]) + length.to_bytes(8, "big")
            writer.write(hdr + bytes(data))
            await writer.drain()
            if opcode == 0x8:  # close echoed: done
                return


async def main():
    ap = argparse.ArgumentParser(description="Tandem's test upstream server")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--name", default="upstream")
    ap.add_argument("--fixed", action="store_true", help="fixed 200 'ok' for every request")
    args = ap.parse_args()
    server = Server(args.name, args.fixed)
    srv = await asyncio.start_server(server.handle, args.host, args.port,
                                     limit=MAX_HEADER_BYTES, backlog=1024, reuse_address=True)
    port = srv.sockets[0].getsockname()[1]
    print(port, flush=True)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with srv:
        await stop


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
