"""The HTTP listener over real sockets: TCP on port 0 and Unix sockets, the gRPC listeners'
security rules (exposed addresses need TLS, mTLS or the bearer token; loopback is made
"exposed" here with `secure_loopback`, the hostNetwork setting), certificate reload, body
limits, refusing to start, and draining on stop."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from sidecar.server.http import BodyTooLarge, HttpListener, HttpSecurity, read_body
from sidecar.server.listeners import ListenError
from sidecar.server.security import TlsFiles, TokenFile
from tests.support.certs import authority

TOKEN = "a-bearer-token-of-24-chars"


async def _hello(request: web.Request) -> web.Response:
    return web.Response(text="hello")


async def _echo_size(request: web.Request) -> web.Response:
    try:
        body = await read_body(request, 16)
    except BodyTooLarge:
        return web.Response(status=413, text="too large")
    return web.Response(text=str(len(body)))


ROUTES = [web.get("/hello", _hello), web.post("/size", _echo_size)]


@asynccontextmanager
async def _listening(
    addresses: list[str], security: HttpSecurity | None = None, **kwargs: object
) -> AsyncIterator[HttpListener]:
    listener = HttpListener(addresses, security=security or HttpSecurity(), **kwargs)  # type: ignore[arg-type]
    listener.add_routes(ROUTES)
    await listener.start()
    try:
        yield listener
    finally:
        await listener.stop()


def _url(address: str, path: str, scheme: str = "http") -> str:
    return f"{scheme}://{address}{path}"


async def _get_unix(path: str, route: str, **kwargs: object) -> aiohttp.ClientResponse:
    connector = aiohttp.UnixConnector(path=path)
    async with aiohttp.ClientSession(connector=connector) as session:
        response = await session.get(f"http://sidecar{route}", **kwargs)  # type: ignore[arg-type]
        await response.read()
        return response


async def test_serves_tcp_on_a_real_port_and_a_unix_socket(tmp_path: Path) -> None:
    sock = tmp_path / "http.sock"
    async with _listening(["127.0.0.1:0", f"unix://{sock}"], socket_mode="0600") as listener:
        tcp, unix = listener.addresses
        assert tcp.startswith("127.0.0.1:") and not tcp.endswith(":0")
        assert unix == f"unix://{sock}"
        assert oct(os.stat(sock).st_mode & 0o777) == "0o600"
        async with aiohttp.ClientSession() as session, session.get(_url(tcp, "/hello")) as r:
            assert (r.status, await r.text()) == (200, "hello")
        assert (await _get_unix(str(sock), "/hello")).status == 200
    assert not sock.exists(), "the socket file is removed on stop"


async def test_ipv6_loopback(tmp_path: Path) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    async with _listening(["[::1]:0"]) as listener:
        (address,) = listener.addresses
        assert address.startswith("[::1]:")
        async with aiohttp.ClientSession() as session, session.get(_url(address, "/hello")) as r:
            assert r.status == 200


async def test_bearer_token_on_exposed_addresses_only(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    sock = tmp_path / "open.sock"
    security = HttpSecurity(token=TokenFile(token_file), secure_loopback=True)
    async with _listening(["127.0.0.1:0", f"unix://{sock}"], security) as listener:
        tcp = listener.addresses[0]
        async with aiohttp.ClientSession() as session:
            async with session.get(_url(tcp, "/hello")) as r:
                assert r.status == 401
                assert r.headers["WWW-Authenticate"].startswith("Bearer")
            bad = {"Authorization": "Bearer not-the-token-at-all"}
            async with session.get(_url(tcp, "/hello"), headers=bad) as r:
                assert r.status == 401
            good = {"Authorization": f"Bearer {TOKEN}"}
            async with session.get(_url(tcp, "/hello"), headers=good) as r:
                assert r.status == 200
        assert (await _get_unix(str(sock), "/hello")).status == 200  # inside the pod


def _client_context(ca: Path, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(*cert)
    return context


async def test_tls_and_mtls_on_exposed_addresses(tmp_path: Path) -> None:
    ca = authority("http", tmp_path)
    server = ca.issue("server", server=True)
    client = ca.issue("client", server=False)
    stranger = authority("stranger", tmp_path).issue("client", server=False)
    tls = TlsFiles(server.cert_file, server.key_file, ca.cert_file)
    async with _listening(["127.0.0.1:0"], HttpSecurity(tls=tls, secure_loopback=True)) as ls:
        (address,) = ls.addresses
        url = _url(address, "/hello", "https")
        mine = _client_context(ca.cert_file, (client.cert_file, client.key_file))
        async with aiohttp.ClientSession() as session:
            async with session.get(url, ssl=mine) as r:
                assert (r.status, await r.text()) == (200, "hello")
            for context in (
                _client_context(ca.cert_file),  # no client certificate
                _client_context(ca.cert_file, (stranger.cert_file, stranger.key_file)),
            ):
                with pytest.raises(aiohttp.ClientError):
                    async with session.get(url, ssl=context) as r:
                        await r.read()
            with pytest.raises(aiohttp.ClientError):  # plain HTTP on a TLS port
                async with session.get(_url(address, "/hello")) as r:
                    await r.read()


def _served_certificate(address: str, ca: Path) -> bytes:
    host, port = address.rsplit(":", 1)
    context = _client_context(ca)
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return der


async def test_certificate_follows_its_files(tmp_path: Path) -> None:
    ca = authority("rotate", tmp_path)
    first, second = ca.issue("one", server=True), ca.issue("two", server=True)
    cert, key = tmp_path / "live-cert.pem", tmp_path / "live-key.pem"
    shutil.copy(first.cert_file, cert)
    shutil.copy(first.key_file, key)
    security = HttpSecurity(tls=TlsFiles(cert, key), secure_loopback=True)
    async with _listening(["127.0.0.1:0"], security) as listener:
        (address,) = listener.addresses
        before = await asyncio.to_thread(_served_certificate, address, ca.cert_file)
        shutil.copy(second.cert_file, cert)
        shutil.copy(second.key_file, key)
        after = await asyncio.to_thread(_served_certificate, address, ca.cert_file)
        assert before != after
        expected = ssl.PEM_cert_to_DER_cert(second.cert_pem.decode())
        assert after == expected
        key.write_text("not a key")  # a broken rotation keeps the last good certificate
        assert await asyncio.to_thread(_served_certificate, address, ca.cert_file) == expected


async def test_body_limit_for_announced_and_chunked_bodies() -> None:
    async with _listening(["127.0.0.1:0"]) as listener:
        url = _url(listener.addresses[0], "/size")
        async with aiohttp.ClientSession() as session:
            async with session.post(url, data=b"x" * 16) as r:
                assert await r.text() == "16"
            async with session.post(url, data=b"x" * 17) as r:
                assert r.status == 413

            async def chunks(count: int) -> AsyncIterator[bytes]:
                for _ in range(count):
                    yield b"x" * 4
                    await asyncio.sleep(0.01)  # each its own chunk on the wire

            async with session.post(url, data=chunks(4)) as r:
                assert await r.text() == "16"  # read whole, not cut at the first chunk
            async with session.post(url, data=chunks(10)) as r:
                assert r.status == 413


async def test_refuses_to_start_on_a_taken_port_and_leaves_nothing_open(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        sock = tmp_path / "first.sock"
        listener = HttpListener([f"unix://{sock}", f"127.0.0.1:{port}"], security=HttpSecurity())
        listener.add_routes(ROUTES)
        with pytest.raises(ListenError, match=f"cannot listen on 127.0.0.1:{port}"):
            await listener.start()
        assert not sock.exists(), "the socket bound before the failure is closed and removed"


async def test_a_live_socket_of_another_process_is_not_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "busy.sock"
    with socket.socket(socket.AF_UNIX) as other:
        other.bind(str(path))
        other.listen()
        listener = HttpListener([f"unix://{path}"], security=HttpSecurity())
        with pytest.raises(ListenError, match="another process is serving there"):
            await listener.start()
        assert path.exists(), "another process's socket is never removed"


async def test_a_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: what SIGKILL leaves behind
    async with _listening([f"unix://{path}"]):
        assert (await _get_unix(str(path), "/hello")).status == 200


async def test_stop_lets_a_running_request_finish(tmp_path: Path) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        entered.set()
        await release.wait()
        return web.Response(text="finished")

    listener = HttpListener(["127.0.0.1:0"], security=HttpSecurity(), shutdown_grace=5)
    listener.add_routes([web.get("/slow", slow)])
    (address,) = await listener.start()
    async with aiohttp.ClientSession() as session:
        call = asyncio.ensure_future(session.get(_url(address, "/slow")))
        await entered.wait()
        stopping = asyncio.ensure_future(listener.stop())
        await asyncio.sleep(0.2)
        assert not stopping.done(), "stop waits for the running request"
        release.set()
        response = await call
        assert (response.status, await response.text()) == (200, "finished")
        await stopping
    with pytest.raises(OSError):
        host, port = address.rsplit(":", 1)
        socket.create_connection((host, int(port)), timeout=1).close()


def test_routes_cannot_be_added_once_started() -> None:
    listener = HttpListener([], security=HttpSecurity())
    listener._runners.append(object())  # type: ignore[arg-type]
    add: Callable[[], None] = lambda: listener.add_routes(ROUTES)  # noqa: E731
    with pytest.raises(RuntimeError, match="before the listener starts"):
        add()
