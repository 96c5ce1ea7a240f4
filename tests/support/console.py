"""A browser-like client of the console for HTTP tests: its own cookies, forms with their CSRF
token, redirects not followed (a test asserts where it is sent)."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy

from axis import tokens
from axis.model import Role
from tests.support.harness import AxisHarness

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Answer:
    status: int
    text: str
    headers: CIMultiDictProxy[str]

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")

    @property
    def csrf(self) -> str:
        found = _CSRF.search(self.text)
        assert found, self.text[:500]
        return html.unescape(found.group(1))


class ConsoleClient:
    """One browser: a cookie jar, and the CSRF token of the last page it saw."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def close(self) -> None:
        await self.session.close()

    async def get(self, path: str, **kwargs: Any) -> Answer:
        async with self.session.get(self.base + path, allow_redirects=False, **kwargs) as resp:
            answer = Answer(resp.status, await resp.text(errors="replace"), resp.headers)
        found = _CSRF.search(answer.text)
        if found:
            self.csrf = html.unescape(found.group(1))
        return answer

    async def post(
        self, path: str, data: dict[str, Any] | aiohttp.FormData | None = None, *, csrf: bool = True
    ) -> Answer:
        if isinstance(data, aiohttp.FormData):
            form = data
            if csrf:
                form.add_field("csrf", self.csrf)
        else:
            form = aiohttp.FormData({**(data or {}), **({"csrf": self.csrf} if csrf else {})})
        async with self.session.post(self.base + path, data=form, allow_redirects=False) as resp:
            return Answer(resp.status, await resp.text(errors="replace"), resp.headers)

    async def sign_in(self, token: str, next_page: str = "/console/") -> Answer:
        form = await self.get(f"/console/signin?next={next_page}")
        assert form.status == 200, form.text[:500]
        answer = await self.post("/console/signin", {"token": token, "next": next_page})
        if answer.status == 303:
            await self.get(answer.location)  # lands on a page: its CSRF token is the session's
        return answer

    @property
    def session_cookie(self) -> str:
        for cookie in self.session.cookie_jar:
            if cookie.key == "axis_console":
                return cookie.value
        return ""


async def staff_token(axis: AxisHarness, role: Role) -> tuple[str, str]:
    """A new admin or auditor token: ``(token_id, token)``."""
    token_id, token, token_hash = tokens.generate()
    await axis.store.issue_token(token_id, token_hash, role, None, actor="test")
    return token_id, token


async def signed_in(axis: AxisHarness, role: Role) -> tuple[ConsoleClient, str]:
    """A client signed in with a fresh token of ``role``, and that token's id."""
    token_id, token = await staff_token(axis, role)
    client = ConsoleClient(axis.url)
    answer = await client.sign_in(token)
    assert answer.status == 303, answer.text[:500]
    return client, token_id
