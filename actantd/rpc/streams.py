"""Live ``agent.logs`` follows: one pump task per follow, tied to the connection that asked for it.

A follow ends when its connection closes, when the client sends ``logs.unsubscribe`` (or
``events.unsubscribe``) with its subscription id, or when the daemon shuts down.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from pathlib import Path

from actantd.rpc.protocol import Channel
from actantd.supervisor import logs

_ids = itertools.count(1)


@dataclass(slots=True)
class _Follow:
    stop: asyncio.Event
    task: asyncio.Task[None]
    owner: int

    def end(self) -> None:
        self.stop.set()
        self.task.cancel()


class LogStreams:
    def __init__(self) -> None:
        self._follows: dict[str, _Follow] = {}

    def __len__(self) -> int:
        return len(self._follows)

    async def open(self, conn: Channel, path: Path, *, agent: str, stream: str, lines: int) -> tuple[list[str], str]:
        """Start following ``path`` for ``conn``; returns the last ``lines`` lines and the subscription id."""
        sub = f"log-{next(_ids)}"
        stop = asyncio.Event()
        # One follower serves the tail and the stream, from the same offset, so no line falls in between.
        follower = logs.follow(path, start_lines=lines, stop=stop)
        tail = await anext(follower)

        async def pump() -> None:
            async for chunk in follower:
                if not conn.notify("log", {"subscription": sub, "agent": agent, "stream": stream, "lines": chunk}):
                    break

        task = asyncio.get_running_loop().create_task(pump())
        self._follows[sub] = _Follow(stop, task, id(conn))

        def closed() -> None:
            follow = self._follows.pop(sub, None)
            if follow is not None:
                follow.end()
            else:
                stop.set()
                task.cancel()

        conn.add_close_callback(closed)
        return tail, sub

    def close(self, sub: str, owner: int) -> bool:
        """End the follow ``sub`` if ``owner`` (``id`` of a connection) opened it."""
        follow = self._follows.get(sub)
        if follow is None or follow.owner != owner:
            return False
        del self._follows[sub]
        follow.end()
        return True

    def close_all(self) -> None:
        for follow in list(self._follows.values()):
            follow.end()
        self._follows.clear()
