"""Who waits for mail on this process: long-polls and push workers, the same for every backend.

A backend calls ``_wake`` with the agencies that got deliveries once they are committed (its
own commits, and those it learns of from other processes or nodes); ``wait_for_mail`` returns
then, or at its timeout.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable


class MailWaiting:
    """Waiters per agency, and listeners told of every agency that got mail."""

    def _init_mail(self) -> None:
        self._waiters: dict[str, set[asyncio.Future[None]]] = defaultdict(set)
        # called (on the loop) with the agencies that just got new deliveries: push workers
        self.mail_listeners: list[Callable[[Iterable[str]], None]] = []

    async def wait_for_mail(self, organ_id: str, timeout: float) -> None:  # noqa: ASYNC109
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[organ_id].add(future)
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            pass
        finally:
            waiters = self._waiters.get(organ_id)
            if waiters is not None:
                waiters.discard(future)
                if not waiters:
                    del self._waiters[organ_id]

    def _wake(self, organ_ids: Iterable[str]) -> None:
        organ_ids = list(organ_ids)
        for listener in self.mail_listeners:
            listener(organ_ids)
        for organ_id in organ_ids:
            for future in self._waiters.get(organ_id, ()):
                if not future.done():
                    future.set_result(None)

    def _release_waiters(self) -> None:
        """Answer every waiting long-poll now (the store is closing)."""
        for waiters in self._waiters.values():
            for future in waiters:
                if not future.done():
                    future.set_result(None)
