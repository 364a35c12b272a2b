#!/usr/bin/env python3
"""Clients for bench/abuse.sh: what a hostile app in the pod does, and a victim that keeps calling.

  abuse.py hosts PROXY_PORT CA_FILE COUNT CONCURRENCY   CONNECT + TLS handshake to COUNT distinct hosts
  abuse.py garbage PROXY_PORT                            CONNECT with host names that are not DNS names
  abuse.py victim URL SECONDS OUT_FILE                   sequential GETs; writes "ok fail p50_ms p99_ms max_ms"
  abuse.py squat PORT CERT KEY OUT_FILE                  binds PORT first, answers TLS with its own certificate, logs what it is sent

Every line of output is a summary; nothing here judges the result (abuse.sh does).
"""
import asyncio
import socket
import ssl
import sys
import time
import urllib.request


async def connect_and_handshake(port, host, ctx):
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n".encode("latin-1"))
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status = head.split(b" ", 2)[1].decode()
        if status != "200":
            writer.close()
            return "connect-" + status
        await asyncio.wait_for(writer.start_tls(ctx, server_hostname=host), 10)
        writer.close()
        return "handshake-ok"
    except Exception as e:  # a refusal is an outcome, not a crash of the bench
        return type(e).__name__


async def hosts(port, ca, count, concurrency):
    ctx = ssl.create_default_context(cafile=ca)
    gate = asyncio.Semaphore(concurrency)
    outcomes = {}

    async def one(i):
        async with gate:
            r = await connect_and_handshake(port, f"h{i}.abuse.test", ctx)
            outcomes[r] = outcomes.get(r, 0) + 1

    start = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(count)))
    took = time.monotonic() - start
    print(f"{count} hosts in {took:.1f} s ({count / took:.0f}/s): " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))


GARBAGE = [
    "localhost;.abuse.test", "a,b.abuse.test", "cn=x.abuse.test", "a+b.abuse.test", '"q".abuse.test',
    "a b.abuse.test", "a\tb.abuse.test", "x" * 64 + ".abuse.test", ("a" * 60 + ".") * 4 + "abuse.test",
    "caf\u00e9.abuse.test", "..abuse.test", "a..b.abuse.test", ".abuse.test", "-a.abuse.test", "a-.abuse.test",
    "*.abuse.test", "a_b.abuse.test", "%00.abuse.test", "a%2eb.abuse.test", "[::1].abuse.test", "1.2.3.4.5",
    "abuse.test.", "x/y.abuse.test", "x\\y.abuse.test", "x@y.abuse.test", "x:1.abuse.test",
]


async def garbage(port):
    outcomes = {}
    for name in GARBAGE:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"CONNECT " + name.encode("utf-8", "surrogateescape") + b":443 HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            head = await asyncio.wait_for(reader.read(4096), 10)
            status = head.split(b" ", 2)[1].decode() if head.startswith(b"HTTP/") else "closed"
            if status == "200":
                # Accepted as a name: the handshake must also end cleanly, whatever the answer.
                try:
                    await asyncio.wait_for(writer.start_tls(ssl.create_default_context(), server_hostname="garbage.abuse.test"), 10)
                    status = "200+tls"
                except Exception as e:
                    status = "200+" + type(e).__name__
            writer.close()
        except Exception as e:
            status = type(e).__name__
        outcomes[status] = outcomes.get(status, 0) + 1
    print(f"{len(GARBAGE)} names: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))


def victim(url, seconds, out):
    ok = fail = 0
    times = []
    end = time.monotonic() + seconds
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while time.monotonic() < end:
        start = time.monotonic()
        try:
            with opener.open(url, timeout=10) as r:
                r.read()
                ok += r.status == 200
                fail += r.status != 200
        except Exception:
            fail += 1
        times.append((time.monotonic() - start) * 1000)
        time.sleep(0.02)
    times.sort()
    pct = lambda p: times[min(len(times) - 1, int(len(times) * p))] if times else 0
    with open(out, "w") as f:
        f.write(f"{ok} {fail} {pct(0.5):.1f} {pct(0.99):.1f} {times[-1] if times else 0:.1f}\n")


def squat(port, cert, key, out):
    """Binds the issuer's port first, as an app process would, and answers TLS with its own
    certificate; logs every decrypted byte a client sends it (a pinned client sends none)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(64)
    with open(out, "ab") as log:
        while True:
            c, _ = s.accept()
            log.write(b"[connection]\n")
            log.flush()
            c.settimeout(5)
            try:
                t = ctx.wrap_socket(c, server_side=True)
                log.write(b"[handshake completed]\n")
                while True:
                    data = t.recv(65536)
                    if not data:
                        break
                    log.write(data)
                    log.flush()
            except Exception as e:
                log.write(f"[{type(e).__name__}]\n".encode())
                log.flush()
            c.close()


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "hosts":
        asyncio.run(hosts(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
    elif cmd == "garbage":
        asyncio.run(garbage(int(sys.argv[2])))
    elif cmd == "victim":
        victim(sys.argv[2], float(sys.argv[3]), sys.argv[4])
    elif cmd == "squat":
        squat(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
    else:
        sys.exit("unknown command " + cmd)
