"""``Store``: the whole protocol every backend implements, assembled from its areas."""

from __future__ import annotations

from typing import Protocol

from axis.store.base import CoreStore
from axis.store.proto_admin import AdminStore
from axis.store.proto_audit import AuditStore
from axis.store.proto_push import PushStore


class Store(CoreStore, AuditStore, PushStore, AdminStore, Protocol):
    """Everything the axis keeps, as domain operations."""
