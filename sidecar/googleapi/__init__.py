"""Google's reCAPTCHA Enterprise API as a contract both sides of the sidecar speak: the error
shapes Google answers with (`errors`) and the service's descriptor for reflection (`service`).
The emulator serves them as Google's stand-in; the Google-compatible face
(`sidecar.server.google_face`) serves apps with them as Google would. Neither side owns them,
so they live here."""
