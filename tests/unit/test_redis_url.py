"""The Redis URL forms (standalone, Cluster, Sentinel): what each means, and a clear error for
each mistake, never repeating a password."""

from __future__ import annotations

import pytest

from sidecar.config import ConfigError, load_settings
from sidecar.redisconn.url import Shape, parse_redis_url


@pytest.mark.parametrize(
    ("url", "shape", "tls", "hosts", "db"),
    [
        ("redis://127.0.0.1:6379/0", Shape.STANDALONE, False, (("127.0.0.1", 6379),), 0),
        ("rediss://cache.example.com/3", Shape.STANDALONE, True, (("cache.example.com", 6379),), 3),
        ("unix:///run/redis.sock", Shape.STANDALONE, False, (), 0),
        (
            "redis+cluster://10.0.0.1:7000,10.0.0.2:7001",
            Shape.CLUSTER,
            False,
            (("10.0.0.1", 7000), ("10.0.0.2", 7001)),
            0,
        ),
        ("rediss+cluster://cfg.example.com", Shape.CLUSTER, True, (("cfg.example.com", 6379),), 0),
        ("redis+cluster://[::1]:7000/0", Shape.CLUSTER, False, (("::1", 7000),), 0),
        (
            "redis+sentinel://s1:26379,s2,[fd00::2]:5000/mymaster/2",
            Shape.SENTINEL,
            False,
            (("s1", 26379), ("s2", 26379), ("fd00::2", 5000)),
            2,
        ),
    ],
)
def test_each_form_names_its_shape_hosts_and_db(
    url: str, shape: Shape, tls: bool, hosts: tuple[tuple[str, int], ...], db: int
) -> None:
    parsed = parse_redis_url(url)
    assert (parsed.shape, parsed.tls, parsed.hosts, parsed.db) == (shape, tls, hosts, db)


def test_credentials_service_and_options_are_read() -> None:
    parsed = parse_redis_url(
        "rediss+sentinel://app:p%40ss@s1:26379/cache-primary"
        "?ssl_ca_certs=/etc/ca.pem&ssl_check_hostname=false&sentinel_password="
    )
    assert (parsed.username, parsed.password, parsed.service) == ("app", "p@ss", "cache-primary")
    assert parsed.tls_options == {"ssl_ca_certs": "/etc/ca.pem", "ssl_check_hostname": False}
    assert parsed.options["sentinel_password"] == ""
    assert "p@ss" not in repr(parsed)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://x:1", "expected redis://"),
        ("memcached://x:1", "expected redis://"),
        ("redis://a:1,b:2/0", "redis\\+cluster"),
        ("redis://:6379/0", "expected redis://"),
        ("redis://x:port/0", "port"),
        ("redis://x:1/zero", "database"),
        ("redis+cluster://a:1/1", "only database 0"),
        ("redis+cluster://a:99999", "port"),
        ("redis+cluster://a:1,,b:2", "host:port"),
        ("redis+cluster://a:1?timeout=3", "unknown URL option 'timeout'"),
        ("redis+cluster://a:1?sentinel_password=x", "unknown URL option"),
        ("redis+cluster://a:1?ssl_cert_reqs=maybe", "ssl_cert_reqs"),
        ("redis+sentinel://s1:26379", "service-name"),
        ("redis+sentinel://s1:26379/a/0/extra", "service-name"),
        ("redis+sentinel://s1:26379/bad%20name", "service name"),
        ("redis+sentinel://s1:26379/m/x", "database"),
        ("unix://", "unix:///path"),
    ],
)
def test_mistakes_are_named(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_redis_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "redis+cluster://u:hunter2secret@a:1/5",
        "redis+sentinel://u:hunter2secret@s1:x/m",
        "redis://u:hunter2secret@h:1/zero",
        "redis://u:hunter2secret@a:1,b:2",
    ],
)
def test_errors_never_repeat_the_password(url: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_redis_url(url)
    assert "hunter2secret" not in str(caught.value)


# ---- in the settings --------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "redis+cluster://10.0.0.1:7000,10.0.0.2:7001",
        "rediss+cluster://cfg.example.com:6379?ssl_ca_certs=/etc/redis/ca.pem",
        "redis+sentinel://s1:26379,s2:26379/mymaster/0",
        "redis://127.0.0.1:6379/0",
    ],
)
def test_every_form_is_a_replay_store(url: str) -> None:
    assert load_settings(emulator=True, replay_store=url).replay_store == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+cluster://a:1/3", "only database 0"),
        ("redis+sentinel://s1:26379", "service-name"),
        ("redis+sentinel://u:hunter2secret@s1:x/m", "port"),
        ("memcached://x:1", "memory://"),
    ],
)
def test_a_bad_store_url_fails_at_start_naming_the_key(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"replay_store.*{message}") as caught:
        load_settings(emulator=True, replay_store=url)
    assert "hunter2secret" not in str(caught.value)


def test_min_replicas_needs_redis_and_a_timeout_below_the_store_timeouts() -> None:
    with pytest.raises(ConfigError, match="replay_min_replicas: needs a Redis"):
        load_settings(emulator=True, replay_min_replicas=1)
    cluster = "redis+cluster://a:1"
    with pytest.raises(ConfigError, match="replay_replication_timeout: must be less"):
        load_settings(emulator=True, replay_store=cluster, replay_min_replicas=1,
                      replay_replication_timeout=0.3)  # fmt: skip
    settings = load_settings(emulator=True, replay_store=cluster, replay_min_replicas=2)
    assert (settings.replay_min_replicas, settings.replay_replication_timeout) == (2, 0.1)
