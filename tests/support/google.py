"""Google as it really is, for tests: the emulator over TLS with an API key, a fake GCE
metadata server handing out access tokens, the project's id and its site keys.

`GoogleEmulator` is what the `google_emulator` fixture (tests/conftest.py) yields; new
upstream tests should start from it rather than from the plaintext `emulator` fixture.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from sidecar.emulator import Emulator, EmulatorControl, EmulatorService, launch_emulator

API_KEY = "AIzaSyEmulatorTestKey0000000000000000000"
PROJECT_ID = "fidelity-project"
PROJECT_NUMBER = "424242424242"
WEB_KEY = "web-key"
ANDROID_KEY = "android-key"
IOS_KEY = "ios-key"
EXPRESS_KEY = "express-key"
SITE_KEYS = (
    f"{WEB_KEY}=web:localhost,shop.example",
    f"{ANDROID_KEY}=android:com.example.shop",
    f"{IOS_KEY}=ios:com.example.Shop",
    f"{EXPRESS_KEY}=express",
)
# Variables that would let google-auth find credentials other than the fake metadata server's.
_FOREIGN_CREDENTIALS = ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT")


@dataclass
class GoogleEmulator:
    """A running TLS emulator with credentials, and what a client needs to use it."""

    emulator: Emulator
    control: EmulatorControl
    tmp: Path

    @property
    def address(self) -> str:
        return self.emulator.address

    @property
    def service(self) -> EmulatorService:
        return self.emulator.service

    @property
    def ca_file(self) -> Path:
        assert self.emulator.ca_file is not None
        return self.emulator.ca_file

    @property
    def ca_pem(self) -> bytes:
        return self.ca_file.read_bytes()

    @property
    def metadata_address(self) -> str:
        assert self.emulator.metadata_address is not None
        return self.emulator.metadata_address

    @property
    def api_key(self) -> str:
        return API_KEY

    @property
    def project(self) -> str:
        return PROJECT_ID

    def sidecar_settings(self, **overrides: Any) -> dict[str, Any]:
        """Settings for a sidecar that talks to this emulator as to Google: TLS trusting its
        CA (`upstream_ca_file`), the API key, the project and the web key."""
        settings: dict[str, Any] = {
            "project": PROJECT_ID,
            "site_key": WEB_KEY,
            "upstream_endpoint": self.address,
            "upstream_plaintext": False,
            "upstream_ca_file": self.ca_file,
            "api_key": self.api_key,
        }
        settings.update(overrides)
        return settings

    def sidecar_args(self, *extra: str) -> list[str]:
        """`serve` flags for a sidecar process using Application Default Credentials (run it
        with `adc_env()`): no API key, the metadata server hands out its tokens."""
        return [
            "--project",
            PROJECT_ID,
            "--site-key",
            WEB_KEY,
            "--upstream-endpoint",
            self.address,
            "--upstream-ca-file",
            str(self.ca_file),
            *extra,
        ]

    def channel(self, *, api_key: str | None = None) -> grpc.aio.Channel:
        """A TLS channel trusting the emulator; with ``api_key``, every call carries it."""
        credentials = grpc.ssl_channel_credentials(self.ca_pem)
        if api_key is not None:
            credentials = grpc.composite_channel_credentials(
                credentials, grpc.metadata_call_credentials(_ApiKey(api_key))
            )
        return grpc.aio.secure_channel(self.address, credentials)

    def adc_env(self, **extra: str) -> dict[str, str]:
        """The environment of a process that finds credentials the way a workload on Google
        Cloud does: only the metadata server (no key file, no gcloud config), and trusts the
        emulator's CA through gRPC's default roots."""
        env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_CREDENTIALS}
        env.update(
            GCE_METADATA_HOST=self.metadata_address,
            GCE_METADATA_IP=self.metadata_address,
            CLOUDSDK_CONFIG=str(self.tmp / "gcloud"),  # no user credentials from a developer box
            GRPC_DEFAULT_SSL_ROOTS_FILE_PATH=str(self.ca_file),
            PYTHONPATH=os.pathsep.join(sys.path),
        )
        env.pop("NO_GCE_CHECK", None)
        env.update(extra)
        return env


class _ApiKey(grpc.AuthMetadataPlugin):
    """`x-goog-api-key` on every call, as Google's clients send an API key."""

    def __init__(self, key: str) -> None:
        self._key = key

    def __call__(self, context: Any, callback: Any) -> None:
        callback((("x-goog-api-key", self._key),), None)


@asynccontextmanager
async def google_emulator(
    tmp: Path, *, site_keys: tuple[str, ...] | None = SITE_KEYS, **options: Any
) -> AsyncIterator[GoogleEmulator]:
    """Start the faithful emulator; options as for `launch_emulator`."""
    emulator = await launch_emulator(
        ["127.0.0.1:0"],
        tls=True,
        ca_file=tmp / "emulator-ca.pem",
        api_keys=[API_KEY],
        metadata_listen="127.0.0.1:0",
        project_id=PROJECT_ID,
        project_number=PROJECT_NUMBER,
        site_keys=site_keys,
        **options,
    )
    channel = emulator.channel()
    try:
        yield GoogleEmulator(emulator, EmulatorControl(channel), tmp)
    finally:
        await channel.close()
        await emulator.stop(0)


def probe_env(
    google: GoogleEmulator, mode: str, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Environment for `tests.support.gapic_probe` in ``mode`` (adc, api_key)."""
    env = google.adc_env(**dict(extra or {}))
    if mode != "adc":
        env.pop("GCE_METADATA_HOST")
        env.pop("GCE_METADATA_IP")
        env["NO_GCE_CHECK"] = "true"
    return env
