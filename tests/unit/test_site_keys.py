"""Choosing the key a request is assessed with (sidecar.core.keys), case by case, in the order
of issue 18: the request's own key, the client type's key, CLIENT_TYPE_MISSING, the one
platform key, the default, KEYS_MISSING."""

from __future__ import annotations

import pytest

from sidecar.config import ConfigError, load_settings
from sidecar.core.keys import NoKey, SiteKeys
from sidecar.core.model import AssessmentRequest, ClientType
from sidecar.core.ports import FailureKind

WEB, ANDROID, IOS = ClientType.WEB, ClientType.ANDROID, ClientType.IOS
NONE = ClientType.UNSPECIFIED
ALL = {"web": "k-web", "android": "k-android", "ios": "k-ios", "express": "k-express"}
MISSING_TYPE = NoKey(FailureKind.CLIENT_TYPE_MISSING)


def missing(detail: str) -> NoKey:
    return NoKey(FailureKind.KEYS_MISSING, detail)


# (case, default site_key, site_keys, request site_key, client type, express, expected)
CASES: list[tuple[str, str, dict[str, str], str, ClientType, bool, str | NoKey]] = [
    ("the request's own key first", "k-default", ALL, "k-own", ANDROID, False, "k-own"),
    ("own key even without any configured", "", {}, "k-own", NONE, False, "k-own"),
    ("client type picks its key", "k-default", ALL, "", ANDROID, False, "k-android"),
    ("web", "", ALL, "", WEB, False, "k-web"),
    ("ios", "", ALL, "", IOS, False, "k-ios"),
    (
        "a client type without its key is KEYS_MISSING, never the default",
        "k-default",
        {"web": "k-web"},
        "",
        IOS,
        False,
        missing("ios"),
    ),
    ("no client type, several platforms", "k-default", ALL, "", NONE, False, MISSING_TYPE),
    (
        "two platforms are enough",
        "",
        {"android": "k-android", "ios": "k-ios"},
        "",
        NONE,
        False,
        MISSING_TYPE,
    ),
    (
        "no client type, exactly one platform",
        "k-default",
        {"ios": "k-ios"},
        "",
        NONE,
        False,
        "k-ios",
    ),
    (
        "express does not count toward several",
        "k-default",
        {"web": "k-web", "express": "k-express"},
        "",
        NONE,
        False,
        "k-web",
    ),
    (
        "only an express key: tokens use the default",
        "k-default",
        {"express": "k-express"},
        "",
        NONE,
        False,
        "k-default",
    ),
    (
        "only an express key, with a client type: the default",
        "k-default",
        {"express": "k-express"},
        "",
        WEB,
        False,
        "k-default",
    ),
    ("no site_keys: the default", "k-default", {}, "", NONE, False, "k-default"),
    ("no site_keys, a client type: the default", "k-default", {}, "", ANDROID, False, "k-default"),
    ("no key at all", "", {}, "", NONE, False, missing("default")),
    ("no key at all, with a client type", "", {}, "", WEB, False, missing("default")),
    ("express uses the express key", "k-default", ALL, "", NONE, True, "k-express"),
    ("express, the request's own key", "k-default", ALL, "k-own", NONE, True, "k-own"),
    (
        "express without an express key, never the default",
        "k-default",
        {"web": "k-web"},
        "",
        NONE,
        True,
        missing("express"),
    ),
]


@pytest.mark.parametrize(
    ("default", "by_type", "site_key", "client_type", "express", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_the_key_is_chosen_in_the_documented_order(
    default: str,
    by_type: dict[str, str],
    site_key: str,
    client_type: ClientType,
    express: bool,
    expected: str | NoKey,
) -> None:
    request = AssessmentRequest(
        token="" if express else "t", site_key=site_key, client_type=client_type, express=express
    )
    assert SiteKeys(default, by_type).choose(request) == expected


def test_an_empty_key_in_site_keys_counts_as_none() -> None:
    keys = SiteKeys("k-default", {"web": "", "android": "k-android"})
    assert keys.platform_keys == ("android",)
    assert keys.choose(AssessmentRequest(token="t")) == "k-android"


def test_unknown_client_types_are_refused() -> None:
    with pytest.raises(ValueError, match="desktop"):
        SiteKeys("", {"desktop": "k"})


@pytest.mark.parametrize(
    "given",
    [
        "web=k-web,express=k-express",
        " web = k-web , express=k-express ",
        '{"web": "k-web", "express": "k-express"}',
        {"web": "k-web", "express": "k-express"},
    ],
)
def test_site_keys_from_a_flag_the_environment_or_the_file(given: object) -> None:
    settings = load_settings(project="p", site_keys=given)
    assert settings.site_keys == {"web": "k-web", "express": "k-express"}


def test_site_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECAPTCHA_SIDECAR_SITE_KEYS", "android=k-a,ios=k-i")
    assert load_settings(project="p").site_keys == {"android": "k-a", "ios": "k-i"}


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ("desktop=k", "site_keys"),
        ("web", "CLIENT_TYPE=KEY"),
        ("web=bad key", "not a reCAPTCHA key id"),
        ("web=", "not a reCAPTCHA key id"),
    ],
)
def test_bad_site_keys_are_refused_at_start(given: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(project="p", site_keys=given)


def test_a_bad_default_site_key_is_refused_at_start() -> None:
    with pytest.raises(ConfigError, match="site_key"):
        load_settings(project="p", site_key="not a key")
