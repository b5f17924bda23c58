"""recaptcha-sidecar: verify reCAPTCHA Enterprise tokens for apps in any language over gRPC."""

from importlib import metadata

try:  # the installed distribution's version, which the build took from VERSION
    __version__ = metadata.version("recaptcha-sidecar")
except metadata.PackageNotFoundError:  # a source tree on sys.path without an install
    __version__ = "0+unknown"
