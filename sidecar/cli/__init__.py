"""The command line (`recaptcha-sidecar`, `python -m sidecar`): see `sidecar.cli.main`."""

import warnings

# google-api-core warns at import, on stderr, that a future release will drop this Python: a
# line of library noise before every command's own output (a startup error's one line too).
# Set before anything imports google.api_core.
warnings.filterwarnings(
    "ignore", category=FutureWarning, module=r"google\.api_core\._python_version_support"
)

from sidecar.cli.main import main  # noqa: E402

__all__ = ["main"]
