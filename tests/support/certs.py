"""Test certificates made at test time: a CA, a server certificate for 127.0.0.1 / localhost,
and client certificates, so TLS and mTLS run over real handshakes. The minting is the
emulator's own (`sidecar.emulator.tls`); this adds the files listeners are configured with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sidecar.emulator import tls

SERVER_NAMES = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its key, as PEM bytes and as files."""

    cert_pem: bytes
    key_pem: bytes
    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class Authority:
    """A self-signed CA that can issue server and client certificates."""

    name: str
    ca: tls.Authority
    directory: Path

    @property
    def cert_pem(self) -> bytes:
        return self.ca.cert_pem

    @property
    def cert_file(self) -> Path:
        path = self.directory / f"{self.name}-ca.pem"
        if not path.exists():
            path.write_bytes(self.cert_pem)
        return path

    def issue(self, name: str, *, server: bool) -> KeyPair:
        leaf = tls.issue(self.ca, name, server=server, names=SERVER_NAMES if server else ())
        cert_file = self.directory / f"{self.name}-{name}.pem"
        key_file = self.directory / f"{self.name}-{name}-key.pem"
        cert_file.write_bytes(leaf.cert_pem)
        key_file.write_bytes(leaf.key_pem)
        return KeyPair(leaf.cert_pem, leaf.key_pem, cert_file, key_file)


def authority(name: str, directory: Path) -> Authority:
    """A fresh CA named `name`, its files kept in `directory`."""
    return Authority(name, tls.new_authority(f"{name} test CA"), directory)
