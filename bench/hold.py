#!/usr/bin/env python3
"""Opens N native-protocol connections to a Jmail server, completes the handshake on each, prints
"ready N" and holds them until stdin closes. Spreads the connections over 127.0.0.x source addresses so
the ephemeral port range of one address is no limit. Used by bench/run.sh to measure memory per idle
connection."""
import asyncio
import resource
import sys

PER_SOURCE = 5000


async def one(host, port, source):
    reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
    await reader.readexactly(28)  # the banner
    writer.write(b"JMAIL 2.0 hold\r\n")
    await writer.drain()
    line = await reader.readline()
    if not line.startswith(b"OK JMAIL"):
        raise RuntimeError(line)
    return writer


async def main():
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    held = []
    batch = 500
    for start in range(0, n, batch):
        tasks = [one(host, port, f"127.0.0.{2 + i // PER_SOURCE}") for i in range(start, min(n, start + batch))]
        held.extend(await asyncio.gather(*tasks))
    print(f"ready {len(held)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for w in held:
        w.close()


asyncio.run(main())
