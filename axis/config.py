"""Settings: one frozen object, built in one place from flags and ``AXIS_*`` variables.

Nothing else in the axis reads the environment: every module gets what it needs passed down,
so a test can run several differently configured axes in one process.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from axis import resources
from axis.lifecycle import ReceiptDeadline  # the rule owns its syntax
from axis.retry import RetryPolicy  # the policy owns the rules its timings obey

MIB = 1024 * 1024
# the slowest AXIS_BODY_MIN_RATE taken: a modem's pace; any slower is a client holding a socket
BODY_MIN_RATE_FLOOR = 1024.0


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything configurable, with the contract's defaults."""

    data: Path = Path("./var")
    store: str = ""  # empty: embedded SQLite inside ``data``; else a postgresql:// URL
    host: str = "127.0.0.1"
    port: int = 8080
    max_bytes: int = 50 * MIB
    # bodies up to this size are kept inline in the store; larger ones as files beside it
    inline_max: int = 256 * 1024
    # bodies up to this size are read into memory; larger ones are spooled to disk first
    spool_threshold: int = 1 * MIB
    body_timeout: float = 60.0  # seconds a request body may stall before it is dropped
    # seconds an idle keep-alive connection stays open (the VNPT SDK never closes its own)
    keepalive_timeout: float = 75.0
    # bytes a second a body must keep up on average: each one must be whole within
    # body_timeout + size / body_min_rate seconds, so a trickle cannot hold a connection
    body_min_rate: float = 16384.0
    push_retry_base: float = 10.0
    push_retry_cap: float = 3600.0
    push_max_age: float = 259200.0
    push_timeout: float = 30.0
    push_enabled: bool = True
    push_concurrency: int = 4  # requests in flight per endpoint
    push_breaker_threshold: int = 5  # consecutive failures before an endpoint is only probed
    push_lease: float = 60.0  # seconds a claimed delivery stays claimed
    push_ca_bundle: str = ""  # PEM bundle for https endpoints; empty: the system trust store
    audit_checkpoint_interval: float = 300.0  # seconds between signed checkpoints
    retention_days: float = 0.0  # purge message bodies older than this; 0 keeps them
    rate_limit: float = 0.0  # requests a second per agency, per process; 0: no limit
    rate_burst: int = 0  # requests an agency may make at once; 0: two seconds' worth
    # benchmark only: append no audit events, to measure what the log costs. Never in service.
    audit_events: bool = True
    receipt_deadline: str = "next-working-day"  # or seconds; when a missing 01/03 is overdue
    console_enabled: bool = True  # serve the console for administrators and auditors
    console_idle: float = 1800.0  # seconds without a request before a console session ends
    console_lifetime: float = 43200.0  # seconds after sign-in when it ends anyway
    # Secure on the session cookie: auto (when the request came over TLS, or the proxy says
    # X-Forwarded-Proto: https), true (always: behind a TLS proxy), false (never)
    console_secure_cookie: str = "auto"
    console_signin_rate: float = 10.0  # sign-in attempts a minute per client address; 0: off
    # behind a proxy: the client address (for the sign-in limit) is X-Forwarded-For's last entry
    console_forwarded_for: bool = False
    group_commit_max: int = 256
    workers: int = 1
    log_level: str = "info"
    log_json: bool = True
    shipped_agencies: Path = field(default_factory=lambda: resources.path("agencies.yaml"))

    @property
    def sqlite_path(self) -> Path:
        return self.data / "axis.sqlite3"

    @property
    def blob_dir(self) -> Path:
        return self.data / "blobs"

    @property
    def tmp_dir(self) -> Path:
        return self.data / "tmp"

    @property
    def key_path(self) -> Path:
        return self.data / "axis-key.pem"

    @property
    def cert_path(self) -> Path:
        return self.data / "axis.pem"

    @property
    def systems_key_path(self) -> Path:
        """The key connected systems' secrets are sealed under (the same on every node)."""
        return self.data / "systems.key"

    @property
    def previous_certs_dir(self) -> Path:
        """Certificates of earlier axis keys: receipts and checkpoints they signed still verify."""
        return self.data / "axis-previous"

    @property
    def effective_rate_burst(self) -> int:
        """The bucket size: as configured, else two seconds of ``rate_limit`` (at least 1)."""
        return self.rate_burst or max(1, math.ceil(2 * self.rate_limit))

    @property
    def uses_postgres(self) -> bool:
        return self.store.startswith(("postgresql://", "postgres://"))


_ENV: dict[str, str] = {
    "data": "AXIS_DATA",
    "store": "AXIS_STORE",
    "host": "AXIS_HOST",
    "port": "AXIS_PORT",
    "max_bytes": "AXIS_MAX_BYTES",
    "inline_max": "AXIS_INLINE_MAX",
    "spool_threshold": "AXIS_SPOOL_THRESHOLD",
    "body_timeout": "AXIS_BODY_TIMEOUT",
    "keepalive_timeout": "AXIS_KEEPALIVE_TIMEOUT",
    "body_min_rate": "AXIS_BODY_MIN_RATE",
    "push_retry_base": "AXIS_PUSH_RETRY_BASE",
    "push_retry_cap": "AXIS_PUSH_RETRY_CAP",
    "push_max_age": "AXIS_PUSH_MAX_AGE",
    "push_timeout": "AXIS_PUSH_TIMEOUT",
    "push_enabled": "AXIS_PUSH_ENABLED",
    "push_concurrency": "AXIS_PUSH_CONCURRENCY",
    "push_breaker_threshold": "AXIS_PUSH_BREAKER_THRESHOLD",
    "push_lease": "AXIS_PUSH_LEASE",
    "push_ca_bundle": "AXIS_PUSH_CA_BUNDLE",
    "audit_checkpoint_interval": "AXIS_AUDIT_CHECKPOINT_INTERVAL",
    "retention_days": "AXIS_RETENTION_DAYS",
    "rate_limit": "AXIS_RATE_LIMIT",
    "rate_burst": "AXIS_RATE_BURST",
    "audit_events": "AXIS_AUDIT_EVENTS",
    "receipt_deadline": "AXIS_RECEIPT_DEADLINE",
    "console_enabled": "AXIS_CONSOLE_ENABLED",
    "console_idle": "AXIS_CONSOLE_IDLE",
    "console_lifetime": "AXIS_CONSOLE_LIFETIME",
    "console_secure_cookie": "AXIS_CONSOLE_SECURE_COOKIE",
    "console_signin_rate": "AXIS_CONSOLE_SIGNIN_RATE",
    "console_forwarded_for": "AXIS_CONSOLE_FORWARDED_FOR",
    "group_commit_max": "AXIS_GROUP_COMMIT_MAX",
    "workers": "AXIS_WORKERS",
    "log_level": "AXIS_LOG_LEVEL",
    "log_json": "AXIS_LOG_JSON",
}


def _convert(name: str, raw: Any) -> Any:
    kind = {f.name: f.type for f in fields(Settings)}[name]
    if kind == "Path":
        return Path(raw)
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        word = str(raw).strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise ValueError("expected true or false (also 1/0, yes/no, on/off)")
    return str(raw)


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
LOG_LEVELS = ("debug", "info", "warning", "error")


def build_settings(
    flags: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Flags win over ``AXIS_*`` variables, which win over the defaults.

    A malformed value raises ``ValueError`` naming the variable, at start-up rather than at
    the first request that needs it.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for name, var in _ENV.items():
        if var in env and env[var] != "":
            try:
                values[name] = _convert(name, env[var])
            except ValueError as exc:
                raise ValueError(f"{var}={env[var]!r}: {exc}") from None
    for name, value in (flags or {}).items():
        if value is not None:
            values[name] = _convert(name, value)
    settings = replace(Settings(), **values)
    if not 1 <= settings.port <= 65535:
        raise ValueError(f"AXIS_PORT (--port) {settings.port}: a TCP port is 1 to 65535")
    if settings.max_bytes <= 0 or settings.workers < 1:
        raise ValueError("AXIS_MAX_BYTES and AXIS_WORKERS must be positive")
    if settings.keepalive_timeout <= 0:
        raise ValueError(
            f"AXIS_KEEPALIVE_TIMEOUT must be positive, not {settings.keepalive_timeout}"
        )
    if settings.body_timeout <= 0:
        raise ValueError(f"AXIS_BODY_TIMEOUT must be positive, not {settings.body_timeout}")
    if settings.body_min_rate < BODY_MIN_RATE_FLOOR:
        raise ValueError(
            f"AXIS_BODY_MIN_RATE must be at least {BODY_MIN_RATE_FLOOR:g} bytes a second, not"
            f" {settings.body_min_rate:g} (slower, a {settings.max_bytes}-byte body could hold"
            " a connection for days)"
        )
    if settings.push_timeout <= 0:
        raise ValueError(f"AXIS_PUSH_TIMEOUT must be positive, not {settings.push_timeout}")
    if settings.rate_limit < 0 or settings.rate_burst < 0:
        raise ValueError("AXIS_RATE_LIMIT and AXIS_RATE_BURST must not be negative")
    if not 0 < settings.console_idle <= settings.console_lifetime:
        raise ValueError(
            "AXIS_CONSOLE_IDLE must be positive and at most AXIS_CONSOLE_LIFETIME"
            f" ({settings.console_idle:g} and {settings.console_lifetime:g})"
        )
    if settings.console_signin_rate < 0:
        raise ValueError("AXIS_CONSOLE_SIGNIN_RATE must not be negative")
    _check_words(settings)
    try:
        RetryPolicy(settings.push_retry_base, settings.push_retry_cap, settings.push_max_age)
    except ValueError as exc:
        raise ValueError(
            f"AXIS_PUSH_RETRY_BASE, AXIS_PUSH_RETRY_CAP, AXIS_PUSH_MAX_AGE: {exc}"
        ) from None
    return settings


def _check_words(settings: Settings) -> None:
    """The settings that are words or paths: refused at start-up, naming the variable."""
    if settings.store and not settings.uses_postgres:
        raise ValueError(
            f"AXIS_STORE={settings.store!r}: expected postgresql://… (or nothing: SQLite in"
            " AXIS_DATA)"
        )
    if settings.console_secure_cookie not in ("auto", "true", "false"):
        raise ValueError(
            f"AXIS_CONSOLE_SECURE_COOKIE={settings.console_secure_cookie!r}: auto, true or false"
        )
    if settings.log_level.lower() not in LOG_LEVELS:
        raise ValueError(f"AXIS_LOG_LEVEL={settings.log_level!r}: one of {', '.join(LOG_LEVELS)}")
    if settings.push_ca_bundle and not Path(settings.push_ca_bundle).is_file():
        raise ValueError(f"AXIS_PUSH_CA_BUNDLE={settings.push_ca_bundle!r}: no such file")
    try:
        ReceiptDeadline.parse(settings.receipt_deadline)
    except ValueError as exc:
        raise ValueError(f"AXIS_RECEIPT_DEADLINE={settings.receipt_deadline!r}: {exc}") from None
