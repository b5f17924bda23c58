"""Redis URLs in the three shapes users run, parsed without I/O (the settings model validates
with this at start, so a bad URL fails with its key named, never at the first request).

- standalone: `redis://[user:pass@]host[:port][/db]`, `rediss://…` (TLS), `unix:///path.sock`
  (redis-py's own URL syntax, query options included);
- Cluster: `redis+cluster://[user:pass@]host:port[,host:port…]`, `rediss+cluster://…`: seeds
  from which the client learns the topology (a managed "discovery endpoint" is one seed);
- Sentinel: `redis+sentinel://[user:pass@]host:port[,host:port…]/<service-name>[/db]`,
  `rediss+sentinel://…`: the sentinels, and the name of the primary they watch.

Query options of the Cluster and Sentinel forms: `ssl_ca_certs`, `ssl_certfile`,
`ssl_keyfile`, `ssl_cert_reqs` (`none` | `optional` | `required`), `ssl_check_hostname`
(`true` | `false`); Sentinel also `sentinel_username`, `sentinel_password` (the sentinels'
own credentials, when they differ from the data nodes'; an empty `sentinel_password=` means
the sentinels need none). Error messages never repeat the URL: it may hold a password.
"""

from __future__ import annotations

import enum
import re
import urllib.parse
from dataclasses import dataclass, field

DEFAULT_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379


class Shape(enum.StrEnum):
    """What kind of deployment a URL names."""

    STANDALONE = "standalone"
    CLUSTER = "cluster"
    SENTINEL = "sentinel"


_SCHEMES: dict[str, tuple[Shape, bool]] = {
    "redis": (Shape.STANDALONE, False),
    "rediss": (Shape.STANDALONE, True),
    "unix": (Shape.STANDALONE, False),
    "redis+cluster": (Shape.CLUSTER, False),
    "rediss+cluster": (Shape.CLUSTER, True),
    "redis+sentinel": (Shape.SENTINEL, False),
    "rediss+sentinel": (Shape.SENTINEL, True),
}
SCHEMES = frozenset(_SCHEMES)

_TLS_OPTIONS = frozenset(
    ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname")
)
_SENTINEL_OPTIONS = frozenset(("sentinel_username", "sentinel_password"))
_HOST = re.compile(r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+")
_SERVICE = re.compile(r"[A-Za-z0-9_.\-]{1,200}")


@dataclass(frozen=True)
class RedisUrl:
    """A parsed URL. `raw` is kept for the standalone shape, which redis-py parses itself."""

    shape: Shape
    tls: bool
    raw: str
    hosts: tuple[tuple[str, int], ...] = ()
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    service: str = ""
    db: int = 0
    options: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def tls_options(self) -> dict[str, object]:
        """redis-py keyword arguments for TLS (Cluster and Sentinel shapes)."""
        out: dict[str, object] = {}
        for name in _TLS_OPTIONS & self.options.keys():
            value = self.options[name]
            out[name] = value.lower() == "true" if name == "ssl_check_hostname" else value
        return out


def parse_redis_url(url: str) -> RedisUrl:
    """The URL's shape and parts; ValueError (naming the problem, not the URL) when it is not
    one of the forms above."""
    scheme, sep, _ = url.partition("://")
    if not sep or scheme.lower() not in _SCHEMES:
        raise ValueError(
            "expected redis://host:port/db, rediss://…, unix:///path.sock, "
            "redis+cluster://host:port[,host:port…] or "
            "redis+sentinel://host:port[,host:port…]/service-name[/db]"
        )
    shape, tls = _SCHEMES[scheme.lower()]
    if shape is Shape.STANDALONE:
        return _standalone(url, tls)
    parts = urllib.parse.urlsplit(url)
    userinfo, at, hostlist = parts.netloc.rpartition("@")
    username, password = _credentials(userinfo) if at else (None, None)
    default_port = DEFAULT_SENTINEL_PORT if shape is Shape.SENTINEL else DEFAULT_PORT
    hosts = tuple(_host_port(item, default_port) for item in hostlist.split(","))
    options = _options(parts.query, shape)
    path = [segment for segment in parts.path.split("/") if segment]
    service, db = "", 0
    if shape is Shape.CLUSTER:
        if path and path != ["0"]:
            raise ValueError("a Redis Cluster has only database 0: drop the path")
    else:
        if not path or len(path) > 2:
            raise ValueError("expected redis+sentinel://host:port[,host:port…]/service-name[/db]")
        service = urllib.parse.unquote(path[0])
        if not _SERVICE.fullmatch(service):
            raise ValueError("sentinel service name: expected letters, digits, '.', '_', '-'")
        if len(path) == 2:
            db = _db(path[1])
    return RedisUrl(shape, tls, url, hosts, username, password, service, db, options)


def _standalone(url: str, tls: bool) -> RedisUrl:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError("expected unix:///path/to/redis.sock")
        return RedisUrl(Shape.STANDALONE, False, url)
    if "," in parts.netloc:
        raise ValueError(
            "several hosts: use redis+cluster://… for a Cluster, "
            "redis+sentinel://…/service-name for Sentinel"
        )
    try:
        port = parts.port  # ValueError naming a port that is not a number
    except ValueError:
        raise ValueError("port: expected a number from 1 to 65535") from None
    if not parts.hostname:
        raise ValueError("expected redis://[user:password@]host[:port][/db]")
    path = parts.path.strip("/")
    db = _db(path) if path else 0
    return RedisUrl(Shape.STANDALONE, tls, url, ((parts.hostname, port or DEFAULT_PORT),), db=db)


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    user, colon, password = userinfo.partition(":")
    return (
        urllib.parse.unquote(user) or None,
        urllib.parse.unquote(password) if colon else None,
    )


def _host_port(item: str, default_port: int) -> tuple[str, int]:
    item = item.strip()
    if item.startswith("["):
        host, _, rest = item.partition("]")
        host += "]"
        port_text = rest.removeprefix(":") if rest.startswith(":") else rest
        if rest and not rest.startswith(":"):
            raise ValueError("expected host:port, with IPv6 addresses in brackets")
    else:
        host, colon, port_text = item.rpartition(":")
        if not colon:
            host, port_text = item, ""
    if not _HOST.fullmatch(host):
        raise ValueError("expected host:port[,host:port…]")
    if not port_text:
        return host.strip("[]"), default_port
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError("port: expected a number from 1 to 65535")
    return host.strip("[]"), int(port_text)


def _db(text: str) -> int:
    if not text.isdigit() or int(text) > 1_000_000:
        raise ValueError("database: expected a number (e.g. /0)")
    return int(text)


def _options(query: str, shape: Shape) -> dict[str, str]:
    allowed = _TLS_OPTIONS | (_SENTINEL_OPTIONS if shape is Shape.SENTINEL else frozenset())
    options: dict[str, str] = {}
    for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if name not in allowed:
            raise ValueError(f"unknown URL option {name!r} (known: {', '.join(sorted(allowed))})")
        options[name] = value
    reqs = options.get("ssl_cert_reqs")
    if reqs is not None and reqs not in ("none", "optional", "required"):
        raise ValueError("ssl_cert_reqs: expected none, optional or required")
    check = options.get("ssl_check_hostname")
    if check is not None and check.lower() not in ("true", "false"):
        raise ValueError("ssl_check_hostname: expected true or false")
    return options
