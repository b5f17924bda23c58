"""Traces, metrics and logs.

`providers` builds the tracer and meter providers from `OTEL_*` and the settings, `metrics` holds
the instruments, `interceptor` observes each RPC, `upstream` and `replay` wrap those two with
spans and measurements, `tracing` has the span helpers the core uses, `logs` the JSON lines.
Nothing is imported here, so `import sidecar.telemetry.logs` stays cheap for the CLI.
"""
