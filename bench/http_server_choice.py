"""Why the HTTP listener is aiohttp: a trivial route on each candidate server, measured the
way docs/front-doors.md reports it. Not part of `make bench` (it needs the candidates installed
beside the sidecar, which the project does not depend on):

    .venv/bin/pip install uvicorn httptools starlette   # aiohttp is already there
    apt-get install wrk
    .venv/bin/python -m bench.http_server_choice

Per server: requests/s and CPU µs per request of `GET /ping` with `wrk -t1 -c16 -d10s` over
loopback (3 s warm-up; CPU from /proc/PID/stat over the run), then the import time and the RSS
an import adds on top of what the sidecar has already imported. Uninstall the candidates after.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

SERVE = r"""
import asyncio, socket, sys
kind = sys.argv[1]
async def main():
    if kind == "aiohttp":
        from aiohttp import web
        async def ok(request):
            return web.Response(text="ok")
        app = web.Application()
        app.router.add_get("/ping", ok)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(runner.addresses[0][1], flush=True)
        await asyncio.Event().wait()
    import uvicorn
    if kind == "starlette":
        from starlette.applications import Starlette
        from starlette.responses import PlainTextResponse
        from starlette.routing import Route
        async def ok(request):
            return PlainTextResponse("ok")
        app = Starlette(routes=[Route("/ping", ok)])
    else:
        async def app(scope, receive, send):
            if scope["type"] != "http":
                return
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"ok"})
    probe = socket.socket(); probe.bind(("127.0.0.1", 0)); port = probe.getsockname()[1]
    probe.close()
    print(port, flush=True)
    http = "h11" if kind == "uvicorn-h11" else "httptools"
    config = uvicorn.Config(app, host="127.0.0.1", port=port, http=http, loop="none",
                            lifespan="off", access_log=False, log_level="warning")
    await uvicorn.Server(config).serve()
asyncio.run(main())
"""

IMPORT = r"""
import sys, time
def rss():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1])
import sidecar.server.app, sidecar.upstream.client  # what `serve` has loaded already
r0, t0 = rss(), time.perf_counter()
if sys.argv[1] == "aiohttp":
    import aiohttp.web
else:
    import uvicorn, uvicorn.protocols.http.httptools_impl
    if sys.argv[1] == "starlette":
        import starlette.applications, starlette.routing, starlette.responses
print(round((time.perf_counter() - t0) * 1000), rss() - r0)
"""

KINDS = ("aiohttp", "uvicorn", "uvicorn-h11", "starlette")


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(kind: str) -> str:
    server = subprocess.Popen(
        [sys.executable, "-c", SERVE, kind], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{server.stdout.readline().strip()}/ping"
        time.sleep(1)
        subprocess.run(["wrk", "-t1", "-c16", "-d3s", url], capture_output=True, check=True)
        before = _cpu(server.pid)
        out = subprocess.run(
            ["wrk", "-t1", "-c16", "-d10s", url], capture_output=True, text=True, check=True
        ).stdout
        cpu = _cpu(server.pid) - before
    finally:
        server.terminate()
        server.wait(10)
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    line = f"{kind:12} {rate:10.0f} req/s {cpu / requests * 1e6:7.1f} µs CPU/request"
    if kind != "uvicorn-h11":
        ms, kib = subprocess.run(
            [sys.executable, "-c", IMPORT, kind], capture_output=True, text=True, check=True
        ).stdout.split()
        line += f"  import {ms} ms, +{int(kib) / 1024:.1f} MiB RSS"
    return line


if __name__ == "__main__":
    for name in sys.argv[1:] or KINDS:
        print(measure(name), flush=True)
