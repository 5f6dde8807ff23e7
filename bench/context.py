"""What every benchmark gets: the mode, a private temp directory, and the process registry."""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.procs import Procs

BIN = Path(sys.executable).parent
ACTANTCTL = BIN / "actantctl"


@dataclass
class Ctx:
    quick: bool
    tmp: Path
    """This run's temp directory; each benchmark takes a fresh subdirectory with :meth:`workdir`."""
    churn_seconds: float
    procs: Procs

    def workdir(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.tmp))

    def pick(self, full: int, quick: int) -> int:
        return quick if self.quick else full
