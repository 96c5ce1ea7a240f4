"""Bearer tokens: issued by hash only, looked up on every request, revoked at once."""

from __future__ import annotations

from datetime import datetime

from axis import timeutil
from axis.audit import Event
from axis.model import EventType, Principal, Role, TokenInfo
from axis.store.backend import Tx
from axis.store.ops.base import OpsBase
from axis.store.protocol import TOUCH_EVERY


class TokenOps(OpsBase):
    """Issue, look up, list, revoke and note the use of tokens."""

    _token_touched: dict[str, datetime]

    async def issue_token(
        self, token_id: str, token_hash: str, role: Role, organ_id: str | None, *, actor: str
    ) -> None:
        async def op(tx: Tx) -> None:
            await tx.run("token_insert", token_id, token_hash, role, organ_id, tx.at)
            detail = {"token_id": token_id, "role": role}
            tx.event(Event(type=EventType.TOKEN_ISSUED, actor=actor, to_id=organ_id, detail=detail))

        await self._b.write(op)

    async def principal_for(self, token_hash: str) -> Principal | None:
        row = await self._b.read.one("token_principal", token_hash)
        return Principal(row[0], row[1], row[2]) if row else None

    async def revoke_token(self, token_id: str, *, actor: str) -> bool:
        async def op(tx: Tx) -> bool:
            owner = await tx.one("token_revoke", tx.at, token_id)
            if owner is None:
                return False
            detail = {"token_id": token_id}
            tx.event(
                Event(type=EventType.TOKEN_REVOKED, actor=actor, to_id=owner[0], detail=detail)
            )
            return True

        return await self._b.write(op)

    async def list_tokens(self, organ_id: str | None = None) -> list[TokenInfo]:
        if organ_id:
            rows = await self._b.read.all("tokens_of", organ_id)
        else:
            rows = await self._b.read.all("tokens_all")
        return [TokenInfo(*row) for row in rows]

    async def touch_token(self, token_id: str, at: datetime) -> None:
        seen = self.__dict__.setdefault("_token_touched", {})  # per process, made on first use
        last = seen.get(token_id)
        if last is not None and at - last < TOUCH_EVERY:
            return
        seen[token_id] = at
        stamp = timeutil.fmt(at)

        async def op(tx: Tx) -> None:
            await tx.run("token_touch", stamp, token_id, stamp)

        await self._b.write(op)
