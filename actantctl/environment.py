"""What of the caller's environment an agent started from ``actantctl`` sees.

The daemon may have been started long ago, from another shell, by systemd: its ``PATH`` is not the caller's,
so a CLI installed since (``npm i -g``, a new ``nvm`` version, ``~/.local/bin``) would be "not found".
``agent create``, ``start`` and ``restart`` therefore send these variables with the request, and the daemon
uses them for the launches of that agent (policy restarts included) until another client sends its own.

Only variables that decide *where programs are found and how text is read* are sent: never credentials
(API keys, tokens) and never anything else of the shell. The template's or backend's ``env`` and
``agent create -e`` still win over them, which is how an environment is pinned (see the README).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

CALLER_ENV_VARS: Final = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TZ")
"""The caller's variables sent with create/start/restart (those set in the caller's environment)."""


def caller_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    env = os.environ if environ is None else environ
    return {k: env[k] for k in CALLER_ENV_VARS if env.get(k)}
