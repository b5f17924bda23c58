"""Account-id protection: `protection` (plain, HMAC-SHA256, AES-SIV, and decryption of ids that
come back from Google), `protected` (the upstream decorator), `tools` (the operator command)."""
