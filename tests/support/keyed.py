"""An emulator that knows the project's typed keys (web, Android, iOS, express), as Google
does, in plaintext and without credentials, for tests of a sidecar's key choice and express
assessments (`async with keyed_emulator() as emulator`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sidecar.emulator import Emulator, EmulatorControl, launch_emulator
from tests.conftest import SidecarFactory, SidecarHandle

# The sidecar's `site_keys` and the emulator's keys of the same ids.
KEYS = {"web": "web-key", "android": "android-key", "ios": "ios-key", "express": "express-key"}
SPECS = (
    "web-key=web:localhost",
    "android-key=android:com.example.shop",
    "ios-key=ios:com.example.Shop",
    "express-key=express",
)


@asynccontextmanager
async def keyed_emulator() -> AsyncIterator[Emulator]:
    emulator = await launch_emulator(["127.0.0.1:0"], site_keys=SPECS)
    yield emulator
    await emulator.stop(0)


async def keyed_sidecar(
    make_sidecar: SidecarFactory, emulator: Emulator, **settings: Any
) -> SidecarHandle:
    """A sidecar with `KEYS` as its site_keys (and no default key) on `emulator`."""
    settings.setdefault("site_keys", KEYS)
    settings.setdefault("site_key", "")
    return await make_sidecar(upstream_endpoint=emulator.address, **settings)


async def emulator_stats(emulator: Emulator) -> dict[str, Any]:
    channel = emulator.channel()
    try:
        return dict(await EmulatorControl(channel).stats())
    finally:
        await channel.close()
