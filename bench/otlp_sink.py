"""A stand-in OTLP/gRPC collector for the tracing scenarios: accepts every export, keeps nothing.

The exporter must have somewhere to send, or the scenario would measure connection retries
instead of tracing. Any unary method is answered with an empty message, which is a valid
`Export*ServiceResponse` (all of its fields are optional), and the bytes received are counted so
the benchmark can tell whether the sidecar exported anything at all.

Run: `python -m bench.otlp_sink --listen 127.0.0.1:0`; prints `otlp-sink listening on ADDR`, and
on SIGTERM prints `otlp-sink received N calls B bytes` before exiting.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import grpc

READY_PREFIX = "otlp-sink listening on"
TOTAL_PREFIX = "otlp-sink received"


def _identity(data: bytes) -> bytes:
    return data


class _Sink(grpc.GenericRpcHandler):
    def __init__(self) -> None:
        self.calls = 0
        self.bytes = 0

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        async def accept(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            self.calls += 1
            self.bytes += len(request)
            return b""

        return grpc.unary_unary_rpc_method_handler(
            accept, request_deserializer=_identity, response_serializer=_identity
        )


async def serve(listen: str) -> None:
    sink = _Sink()
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)])
    server.add_generic_rpc_handlers((sink,))
    port = server.add_insecure_port(listen)
    await server.start()
    print(f"{READY_PREFIX} {listen.rsplit(':', 1)[0]}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(0.5)
    print(f"{TOTAL_PREFIX} {sink.calls} calls {sink.bytes} bytes", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:0")
    asyncio.run(serve(parser.parse_args().listen))


if __name__ == "__main__":
    main()
