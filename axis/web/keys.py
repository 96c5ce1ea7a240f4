"""Typed application keys: the shared objects every handler reaches through the app."""

from __future__ import annotations

from aiohttp import web

from axis.config import Settings
from axis.metrics import Metrics
from axis.ratelimit import RateLimiter
from axis.registry_cache import RegistryCache
from axis.secretbox import SecretBox
from axis.signing import AxisKey
from axis.store.protocol import Store

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
REGISTRY = web.AppKey("registry", RegistryCache)
AXIS_KEY = web.AppKey("axis_key", AxisKey)
METRICS = web.AppKey("metrics", Metrics)
# present only when AXIS_RATE_LIMIT is set
LIMITER = web.AppKey("rate_limiter", RateLimiter)
# what connected systems' secrets are sealed under (systems.key in the data directory)
SECRET_BOX = web.AppKey("secret_box", SecretBox)
# the bytes of openapi.yaml, read once at start
OPENAPI = web.AppKey("openapi", bytes)
# the axis certificate and those of its earlier keys (PEM), read once at start
AXIS_CERTIFICATES: web.AppKey[list[bytes]] = web.AppKey("axis_certificates")
