"""forward-auth: who may say what about the request a proxy holds."""

from __future__ import annotations

import pytest

from sidecar.server.forward_auth import (
    BadForwardAuth,
    ForwardAuthSettings,
    parse_networks,
    to_assessment_request,
)

DEFAULT = ForwardAuthSettings()
PROXY_HEADERS = [
    ("X-Recaptcha-Token", "tok"),
    ("User-Agent", "Mozilla/5.0"),
    ("X-Forwarded-For", "198.51.100.7"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Host", "shop.example"),
    ("X-Forwarded-Uri", "/checkout?step=2"),
    ("x-ja3-fingerprint", "ja3hash"),
    ("x-ja4-fingerprint", "ja4hash"),
]


def test_from_a_trusted_proxy_everything_is_honoured() -> None:
    request = to_assessment_request(
        peer="127.0.0.1", headers=PROXY_HEADERS, query=[("action", "checkout")], settings=DEFAULT
    )
    assert request.token == "tok"
    assert request.expected_action == "checkout"
    assert request.user_ip_address == "198.51.100.7"
    assert request.user_agent == "Mozilla/5.0"
    assert request.requested_uri == "https://shop.example/checkout?step=2"
    assert (request.ja3, request.ja4) == ("ja3hash", "ja4hash")


def test_from_an_untrusted_peer_forwarded_headers_are_ignored() -> None:
    request = to_assessment_request(
        peer="203.0.113.9", headers=PROXY_HEADERS, query=[], settings=DEFAULT
    )
    assert request.user_ip_address == "203.0.113.9"
    assert (request.ja3, request.ja4, request.requested_uri) == ("", "", "")
    assert request.token == "tok"  # the token is the end user's own, whoever carries it


def test_unix_socket_peer_is_the_pod_itself() -> None:
    request = to_assessment_request(peer=None, headers=PROXY_HEADERS, query=[], settings=DEFAULT)
    assert request.user_ip_address == "198.51.100.7"


def test_trusted_proxies_setting_replaces_loopback() -> None:
    settings = ForwardAuthSettings(trusted_proxies=parse_networks(["10.0.0.0/8"]))
    trusted = to_assessment_request(
        peer="10.1.2.3", headers=PROXY_HEADERS, query=[], settings=settings
    )
    assert trusted.user_ip_address == "198.51.100.7"
    loopback = to_assessment_request(
        peer="127.0.0.1", headers=PROXY_HEADERS, query=[], settings=settings
    )
    assert loopback.user_ip_address == "127.0.0.1"


def test_the_action_never_comes_from_a_header() -> None:
    headers = [*PROXY_HEADERS, ("X-Recaptcha-Action", "weak"), ("action", "weak")]
    request = to_assessment_request(peer="127.0.0.1", headers=headers, query=[], settings=DEFAULT)
    assert request.expected_action == ""


def test_an_action_given_twice_in_the_auth_url_is_refused() -> None:
    with pytest.raises(BadForwardAuth, match="action"):
        to_assessment_request(
            peer="127.0.0.1",
            headers=PROXY_HEADERS,
            query=[("action", "login"), ("action", "weak")],
            settings=DEFAULT,
        )


def test_a_token_header_given_twice_is_refused() -> None:
    headers = [*PROXY_HEADERS, ("x-recaptcha-token", "other")]
    with pytest.raises(BadForwardAuth, match="X-Recaptcha-Token"):
        to_assessment_request(peer="127.0.0.1", headers=headers, query=[], settings=DEFAULT)


def test_token_header_is_configurable_and_case_insensitive() -> None:
    settings = ForwardAuthSettings(token_header="X-Captcha")
    request = to_assessment_request(
        peer="127.0.0.1", headers=[("x-captcha", " t2 ")], query=[], settings=settings
    )
    assert request.token == "t2"


@pytest.mark.parametrize(
    ("forwarded", "client"),
    [
        (["198.51.100.7"], "198.51.100.7"),
        # the end user wrote the left part; the trusted hop appended the real address
        (["6.6.6.6, 198.51.100.7"], "198.51.100.7"),
        (["6.6.6.6", "198.51.100.7"], "198.51.100.7"),
        # trusted hops on the right are skipped
        (["198.51.100.7, 127.0.0.1"], "198.51.100.7"),
        (["[2001:db8::1]:443"], "2001:db8::1"),
        (["::ffff:198.51.100.7"], "198.51.100.7"),
        # garbage ends the walk: the peer it is
        (["6.6.6.6, not-an-ip"], "127.0.0.1"),
    ],
)
def test_client_ip_is_the_rightmost_untrusted_hop(forwarded: list[str], client: str) -> None:
    headers = [("X-Forwarded-For", value) for value in forwarded]
    request = to_assessment_request(peer="127.0.0.1", headers=headers, query=[], settings=DEFAULT)
    assert request.user_ip_address == client


def test_x_real_ip_only_without_x_forwarded_for() -> None:
    request = to_assessment_request(
        peer="127.0.0.1", headers=[("X-Real-IP", "198.51.100.8")], query=[], settings=DEFAULT
    )
    assert request.user_ip_address == "198.51.100.8"
    both = [("X-Real-IP", "6.6.6.6"), ("X-Forwarded-For", "198.51.100.7")]
    request = to_assessment_request(peer="127.0.0.1", headers=both, query=[], settings=DEFAULT)
    assert request.user_ip_address == "198.51.100.7"


def test_nginx_original_uri_with_host() -> None:
    headers = [("Host", "shop.example"), ("X-Original-URI", "/login")]
    request = to_assessment_request(peer="127.0.0.1", headers=headers, query=[], settings=DEFAULT)
    assert request.requested_uri == "http://shop.example/login"


def test_parse_networks() -> None:
    assert [str(n) for n in parse_networks(["10.0.0.0/8", "192.0.2.7", "::1"])] == [
        "10.0.0.0/8",
        "192.0.2.7/32",
        "::1/128",
    ]
    with pytest.raises(ValueError, match="'nope': not an IP address"):
        parse_networks(["nope"])
