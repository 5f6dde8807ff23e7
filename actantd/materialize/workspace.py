"""The side effects of materializing outside the derived files themselves, for the instance lifecycle:
``.git/info/exclude`` blocks for ``--work-dir`` workspaces and global trust entries.

Kept here (not in the lifecycle code) so create, sync and destroy call one function each and the rules
stay next to the materializers they serve. Every function is safe to call again (idempotent).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from actantd.config.registry import Resolved
from actantd.materialize import gitexclude, trust

log = logging.getLogger(__name__)
INSTANCE_FILE = ".actant.json"


def exclude(workspace: Path, name: str, files: Iterable[str]) -> None:
    """List ``.actant.json`` and Actant's files in the repository's ``info/exclude`` (a ``--work-dir``)."""
    gitexclude.update(workspace, name, [INSTANCE_FILE, *files])


def unexclude(workspace: Path, name: str) -> None:
    try:
        gitexclude.remove(workspace, name)
    except OSError as exc:  # destroy must go on; the block is harmless
        log.warning("%s: could not remove the .git/info/exclude block: %s", name, exc)


def trust_home() -> Path:
    return Path(os.path.expanduser("~"))


def add_trust(resolved: Resolved, workspace: Path, current: list[str]) -> list[str]:
    """Make ``current`` (the record's ``trustEntries``) match the template: entries only with ``global``."""
    materializer = resolved.backend.materializer
    if resolved.template.trust != "global" or not trust.supported(materializer):
        remove_trust(current, workspace)
        return []
    if current:
        if materializer == trust.CLAUDE:
            try:
                trust.update_claude_servers(str(workspace), [s.name for s in resolved.mcp_servers],
                                            home=trust_home(), env=os.environ)  # fmt: skip
            except (OSError, trust.TrustFileError) as exc:
                log.warning("%s: could not update the ~/.claude.json entry: %s", workspace, exc)
        return current
    added = trust.add(materializer, str(workspace), home=trust_home(), env=os.environ,
                      mcp_servers=[s.name for s in resolved.mcp_servers])  # fmt: skip
    return [f"{materializer}:{added}"] if added is not None else []


def remove_trust(entries: list[str], workspace: Path) -> None:
    for entry in entries:
        materializer, _, _path = entry.partition(":")
        try:
            trust.remove(materializer, str(workspace), home=trust_home(), env=os.environ)
        except (OSError, trust.TrustFileError) as exc:
            log.warning("could not remove the trust entry for %s (%s): %s", workspace, entry, exc)
