"""In-process publish/subscribe for daemon events.

The manager publishes each transition *after* it is persisted and journaled; RPC connections subscribe on
behalf of their peers (``events.subscribe``) and turn deliveries into ``event`` notifications. The bus is
deliberately dumb and synchronous: ``deliver`` must not block (a connection only enqueues), so a publish
costs one pass over the subscriptions and nothing is ever awaited while state is being changed.

Type filters are exact names (``"transition"``) or a family written ``"config.*"``, which matches
``"config"`` itself and every ``"config.<anything>"``; ``"*"`` matches everything. :class:`TypeFilter`
is shared with the journal so ``events.query`` and ``events.subscribe`` select the same events.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

Event = dict[str, Any]
"""``{"type", "agent", "at", ...}``; subscribers share one dict per publish and must treat it as read-only."""

Deliver = Callable[[Event], None]


class TypeFilter:
    """A compiled set of type patterns: exact names plus ``family.*`` prefixes."""

    __slots__ = ("exact", "families", "match_all")

    def __init__(self, patterns: Iterable[str]) -> None:
        patterns = tuple(patterns)
        self.match_all = "*" in patterns
        self.exact = frozenset(p for p in patterns if p != "*" and not p.endswith(".*"))
        self.families = tuple(sorted({p[:-2] for p in patterns if p.endswith(".*")}))

    @classmethod
    def of(cls, patterns: str | Iterable[str] | None) -> TypeFilter | None:
        """``None`` (or an empty collection) means "no filter"; a bare string is one pattern, not its letters."""
        if patterns is None:
            return None
        if isinstance(patterns, str):
            patterns = (patterns,)
        compiled = cls(patterns)
        if compiled.match_all or not (compiled.exact or compiled.families):
            return None
        return compiled

    def matches(self, type_: str) -> bool:
        if self.match_all or type_ in self.exact:
            return True
        return any(type_ == fam or type_.startswith(fam + ".") for fam in self.families)


@dataclass(slots=True, eq=False)
class _Subscription:
    id: str
    deliver: Deliver
    agent: str | None
    types: TypeFilter | None
    owner: Hashable | None
    active: bool = True
    errors: int = 0


class EventBus:
    """Subscriptions keyed by id and grouped by owner, so a closed connection drops all of its own at once."""

    def __init__(self) -> None:
        self._subs: dict[str, _Subscription] = {}
        self._by_owner: dict[Hashable, set[str]] = {}
        self._ids = itertools.count(1)

    def __len__(self) -> int:
        return len(self._subs)

    def subscribe(
        self,
        deliver: Deliver,
        *,
        agent: str | None = None,
        types: str | Iterable[str] | None = None,
        owner: Hashable | None = None,
    ) -> str:
        """Register ``deliver`` for events about ``agent`` (any when None) whose type matches ``types``."""
        sub_id = f"sub-{next(self._ids)}"
        self._subs[sub_id] = _Subscription(sub_id, deliver, agent, TypeFilter.of(types), owner)
        if owner is not None:
            self._by_owner.setdefault(owner, set()).add(sub_id)
        return sub_id

    def unsubscribe(self, sub_id: str, *, owner: Hashable | None = None) -> bool:
        """Cancel one subscription; with ``owner`` given, only one that owner holds (peers can't cancel others')."""
        sub = self._subs.get(sub_id)
        if sub is None or (owner is not None and sub.owner != owner):
            return False
        self._drop(sub)
        return True

    def unsubscribe_all(self, owner: Hashable) -> int:
        """Cancel every subscription of ``owner`` (a connection that closed); returns how many there were."""
        ids = self._by_owner.pop(owner, set())
        for sub_id in ids:
            sub = self._subs.pop(sub_id, None)
            if sub is not None:
                sub.active = False
        return len(ids)

    def publish(self, event: Event) -> int:
        """Hand ``event`` to every matching subscriber; returns how many received it.

        Subscriber failures are contained here: they are logged and never reach the publisher, which is in
        the middle of a state change. Iterating over a snapshot lets a subscriber (un)subscribe from inside
        ``deliver``; the ``active`` check keeps a subscription cancelled mid-publish from receiving it.
        """
        type_ = event["type"]
        agent = event.get("agent")
        delivered = 0
        for sub in tuple(self._subs.values()):
            if sub.agent is not None and sub.agent != agent:
                continue
            if sub.types is not None and not sub.types.matches(type_):
                continue
            if not sub.active:
                continue
            try:
                sub.deliver(event)
            except Exception:
                sub.errors += 1
                # The first failure gets a traceback; a subscriber that keeps failing must not flood the log.
                if sub.errors == 1:
                    log.exception("event subscriber %s failed; other subscribers are unaffected", sub.id)
                else:
                    log.debug("event subscriber %s failed again (%d failures)", sub.id, sub.errors)
            else:
                delivered += 1
        return delivered

    def _drop(self, sub: _Subscription) -> None:
        sub.active = False
        del self._subs[sub.id]
        if sub.owner is not None:
            ids = self._by_owner.get(sub.owner)
            if ids is not None:
                ids.discard(sub.id)
                if not ids:
                    del self._by_owner[sub.owner]
