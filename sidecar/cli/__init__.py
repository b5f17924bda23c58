"""The command line (`recaptcha-sidecar`, `python -m sidecar`): see `sidecar.cli.main`."""

from sidecar.cli.main import main

__all__ = ["main"]
