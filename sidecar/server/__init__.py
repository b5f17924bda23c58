"""The gRPC server: composition root (`app`), listeners and their security, interceptors, the
drain gate, health, and the front doors (`servicer`). Nothing is imported here, so the pure
`addresses` module stays cheap for the settings."""
