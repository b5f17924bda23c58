"""The floor of any Python hop: a grpc.aio proxy that forwards raw bytes, nothing else.

Every unary method is relayed to the upstream on one long-lived channel with identity
serializers, so no message is parsed, built or looked at. A Python sidecar that does real work
cannot beat this; the benchmark reports the sidecar's throughput as a fraction of it.

Run: `python -m bench.passthrough --listen 127.0.0.1:0 --upstream 127.0.0.1:PORT`; it prints
`passthrough listening on ADDR` when ready and stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

import grpc

READY_PREFIX = "passthrough listening on"


def _identity(data: bytes) -> bytes:
    return data


class _Relay(grpc.GenericRpcHandler):
    """Answers every method by calling the same method upstream with the same bytes."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._channel = channel
        self._calls: dict[str, Any] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        call = self._calls.get(method)
        if call is None:
            call = self._channel.unary_unary(
                method, request_serializer=_identity, response_deserializer=_identity
            )
            self._calls[method] = call

        async def relay(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            try:
                return await call(request, timeout=context.time_remaining())
            except grpc.aio.AioRpcError as error:
                await context.abort(error.code(), error.details() or "")
                raise

        return grpc.unary_unary_rpc_method_handler(
            relay, request_deserializer=_identity, response_serializer=_identity
        )


async def serve(listen: str, upstream: str) -> None:
    channel = grpc.aio.insecure_channel(upstream)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((_Relay(channel),))
    port = server.add_insecure_port(listen)
    await server.start()
    shown = listen if listen.startswith("unix:") else f"{listen.rsplit(':', 1)[0]}:{port}"
    print(f"{READY_PREFIX} {shown}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(1)
    await channel.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.listen, args.upstream))


if __name__ == "__main__":
    main()
