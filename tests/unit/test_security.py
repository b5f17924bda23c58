"""The pure parts of listener security: which addresses are exposed, socket modes, headers."""

from __future__ import annotations

import pytest

from sidecar.config.addresses import is_exposed, listen_problem, parse_socket_mode
from sidecar.server.security import bearer_token


@pytest.mark.parametrize(
    ("address", "exposed"),
    [
        ("127.0.0.1:50051", False),
        ("127.0.0.6:50051", False),
        ("[::1]:50051", False),
        ("localhost:50051", False),
        ("unix:///run/recaptcha/sidecar.sock", False),
        ("unix:relative.sock", False),
        ("0.0.0.0:50051", True),
        ("[::]:50051", True),
        ("10.0.0.7:50051", True),
        ("[fd00::7]:50051", True),
        ("sidecar.example.internal:50051", True),
    ],
)
def test_exposed_addresses(address: str, exposed: bool) -> None:
    assert is_exposed(address) is exposed


def test_secure_loopback_exposes_loopback_tcp_but_not_unix_sockets() -> None:
    assert is_exposed("127.0.0.1:50051", secure_loopback=True)
    assert not is_exposed("unix:///run/x.sock", secure_loopback=True)


def test_listen_problem_names_only_the_exposed_addresses() -> None:
    problem = listen_problem(
        ["127.0.0.1:1", "0.0.0.0:2", "unix:///x"],
        secure_loopback=False,
        tls=False,
        token=False,
        insecure_listen=False,
    )
    assert problem is not None and problem.startswith("listen: 0.0.0.0:2 can be reached")
    secured_ways: list[dict[str, bool]] = [
        {"tls": True, "client_ca": True},
        {"token": True},
        {"tls": True, "token": True},
        {"insecure_listen": True},
        {"tls": True, "insecure_listen": True},
    ]
    for secured in secured_ways:
        flags = {"tls": False, "token": False, "insecure_listen": False, **secured}
        assert listen_problem(["0.0.0.0:2"], secure_loopback=False, **flags) is None
    # TLS alone authenticates nobody (issue 13 item 3).
    alone = listen_problem(
        ["0.0.0.0:2"], secure_loopback=False, tls=True, token=False, insecure_listen=False
    )
    assert alone is not None and "TLS alone authenticates nobody" in alone


@pytest.mark.parametrize(
    ("value", "mode"),
    [("0660", "0660"), ("660", "0660"), ("0600", "0600"), (0o660, "0660"), ("0777", "0777")],
)
def test_socket_modes(value: object, mode: str) -> None:
    assert parse_socket_mode(value) == mode


@pytest.mark.parametrize("value", ["0999", "rw-rw----", "", 660, -1, True, "01777", None])
def test_bad_socket_modes(value: object) -> None:
    with pytest.raises(ValueError, match="octal file mode"):
        parse_socket_mode(value)


@pytest.mark.parametrize(
    ("metadata", "token"),
    [
        ((("authorization", "Bearer abc"),), "abc"),
        ((("authorization", "bearer abc "),), "abc"),
        ((("authorization", "Basic abc"),), None),
        ((("authorization", "Bearer "),), None),
        ((("authorization", "abc"),), None),
        ((("authorization", "Bearer a"), ("authorization", "Bearer b")), None),
        ((("authorization-bin", b"x"),), None),
        ((), None),
        (None, None),
    ],
)
def test_bearer_token_parsing(metadata: tuple[tuple[str, str], ...] | None, token: str) -> None:
    assert bearer_token(metadata) == token
