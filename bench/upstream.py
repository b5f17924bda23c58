"""The emulator as the benchmark's upstream, with its startup heap frozen.

The emulator stands in for Google, so its own hiccups are noise in every row. A full garbage
collection in it traversed the tens of thousands of objects built at import (12-24 ms pauses,
seen with gc callbacks during a run), landing in whichever row was being measured; frozen, they
are never traversed. Same command line as `recaptcha-sidecar emulator`.
"""

from __future__ import annotations

import gc
import sys

import sidecar.emulator  # noqa: F401 - everything the emulator imports, before the freeze
from sidecar.cli import main

if __name__ == "__main__":
    gc.collect()
    gc.freeze()
    sys.exit(main(["emulator", *sys.argv[1:]]))
