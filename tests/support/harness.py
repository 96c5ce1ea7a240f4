"""A real axis for tests: initialised data directory, aiohttp server on 127.0.0.1, a client.

Agencies are registered through the admin API exactly as an operator would, each with its own
test certificate, and packages are signed with signxml (an implementation independent of the
one the axis verifies with).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from axis import bootstrap, tokens
from axis.config import Settings
from axis.store import open_store
from axis.store.protocol import Store
from axis.web.app import create_app
from axis.web.server import AxisRunner, runner_args
from tests.support import packets, pki, signers
from tests.support.vdxp_client import VdxpClient

_slots = itertools.count(1)


@dataclass
class TestAgency:
    __test__ = False  # a helper, not a test class

    organ_id: str
    ident: pki.Identity
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class AxisHarness:
    url: str
    session: aiohttp.ClientSession
    store: Store
    settings: Settings
    admin_token: str

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    async def register(
        self,
        organ_id: str,
        *,
        ident: pki.Identity | None = None,
        name: str | None = None,
        kind: str | None = None,
        **fields: Any,
    ) -> TestAgency:
        """Register (or re-register) an agency with a certificate and give it a token.

        The token comes from the API when the agency is active; for a suspended or closed one
        (whose token the API refuses to issue) straight from the store, as one issued before
        the agency was suspended.
        """
        ident = ident or pki.identity("rsa2048", common_name=f"{organ_id} signer")
        body: dict[str, Any] = {
            "name": name or f"Test agency {organ_id}",
            "kind": kind or ("provincial" if organ_id[-3] in "HK" else "central"),
            "certificates": [ident.cert_pem.decode()],
        }
        body.update(fields)
        async with self.session.put(
            f"{self.url}/v1/admin/agencies/{organ_id}", json=body, headers=self.admin
        ) as resp:
            assert resp.status in (200, 201), await resp.text()
        if fields.get("status", "active") != "active":
            token_id, token, token_hash = tokens.generate()
            await self.store.issue_token(token_id, token_hash, "agency", organ_id, actor="test")
            return TestAgency(organ_id, ident, token)
        async with self.session.post(
            f"{self.url}/v1/admin/agencies/{organ_id}/tokens", headers=self.admin
        ) as resp:
            assert resp.status == 201, await resp.text()
            token = (await resp.json())["token"]
        return TestAgency(organ_id, ident, token)

    async def add_system(self, system_id: str, agencies: list[str], **fields: Any) -> str:
        """Register a connected system (VDXP) through the admin API; its secret."""
        body = {"id": system_id, "name": f"System {system_id}", "agencies": agencies, **fields}
        async with self.session.post(
            f"{self.url}/v1/admin/systems", json=body, headers=self.admin
        ) as resp:
            assert resp.status == 201, await resp.text()
            return str((await resp.json())["secret"])

    async def put_system(self, system_id: str, **fields: Any) -> tuple[int, Any]:
        body = {"name": f"System {system_id}", **fields}
        async with self.session.put(
            f"{self.url}/v1/admin/systems/{system_id}", json=body, headers=self.admin
        ) as resp:
            return resp.status, await resp.json(content_type=None)

    def sdk(self, system_id: str, secret: str, **kwargs: Any) -> VdxpClient:
        """A client that talks to ``/vxp`` as VNPT's SDK does (one per "process")."""
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        return VdxpClient(host, int(port), systemid=system_id, secret=secret, **kwargs)

    def edoc(self, sender: TestAgency, to: list[str], **kwargs: Any) -> bytes:
        """A document package from ``sender`` to ``to``, signed with the sender's key."""
        kwargs.setdefault("document_id", f"{sender.organ_id},2026/11/23,{next(_slots)}/TEST")
        xml = packets.edoc_xml(sender.organ_id, to, **kwargs)
        return signers.sign(xml, sender.ident.key_pem, sender.ident.cert_pem)

    def status(
        self,
        sender: TestAgency,
        doc_from: str,
        document_id: str,
        code: str,
        **kwargs: Any,
    ) -> bytes:
        """A status packet from ``sender`` about ``doc_from``'s document, signed."""
        xml = packets.status_xml(sender.organ_id, doc_from, document_id, code, **kwargs)
        return signers.sign(xml, sender.ident.key_pem, sender.ident.cert_pem)

    async def send_status(self, sender: TestAgency, body: bytes) -> tuple[int, Any]:
        return await self.send(sender, body, "/v1/statuses")

    async def send(
        self, sender: TestAgency, body: bytes, path: str = "/v1/edocs"
    ) -> tuple[int, Any]:
        async with self.session.post(
            f"{self.url}{path}",
            data=body,
            headers={**sender.auth, "Content-Type": "application/xml"},
        ) as resp:
            ctype = resp.content_type
            data = await resp.json(content_type=None) if "json" in ctype else await resp.read()
            return resp.status, data

    async def get(self, who: dict[str, str] | TestAgency, path: str) -> tuple[int, Any]:
        headers = who.auth if isinstance(who, TestAgency) else who
        async with self.session.get(f"{self.url}{path}", headers=headers) as resp:
            ctype = resp.content_type
            data = await resp.json(content_type=None) if "json" in ctype else await resp.read()
            return resp.status, data

    async def post_json(
        self, who: dict[str, str] | TestAgency, path: str, body: Any
    ) -> tuple[int, Any]:
        headers = who.auth if isinstance(who, TestAgency) else who
        async with self.session.post(f"{self.url}{path}", json=body, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)


class AxisTestServer(TestServer):
    """aiohttp's test server, serving through the axis's runner with the service's arguments.

    (aiohttp's own test server cancels a handler whose client hangs up; the service does not.)
    """

    __test__ = False

    def __init__(self, app: web.Application, *, settings: Settings, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._settings = settings

    async def _make_runner(self, **kwargs: Any) -> AxisRunner:
        return AxisRunner(self.app, **{**kwargs, **runner_args(self._settings)})


@contextlib.asynccontextmanager
async def start_axis(settings: Settings) -> AsyncIterator[AxisHarness]:
    await bootstrap.initialize(settings)
    store = open_store(settings)
    await store.open()
    token_id, admin_token, token_hash = tokens.generate()
    await store.issue_token(token_id, token_hash, "admin", None, actor="test")
    app = create_app(settings, store, bootstrap.load_key(settings), own_store=False)
    server = AxisTestServer(app, host="127.0.0.1", settings=settings)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield AxisHarness(
                url=str(server.make_url("")).rstrip("/"),
                session=session,
                store=store,
                settings=settings,
                admin_token=admin_token,
            )
    finally:
        await server.close()
        await store.close()
