"""The way to Google's reCAPTCHA Enterprise API (or the emulator that speaks its protocol)."""
