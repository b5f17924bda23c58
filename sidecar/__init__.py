"""recaptcha-sidecar: verify reCAPTCHA Enterprise tokens for apps in any language over gRPC."""

__version__ = "0.1.0"
