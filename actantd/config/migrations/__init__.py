"""Config file migrations: one module per version step, a runner that backs up and rewrites.

The daemon never migrates configs on its own: configs are the user's files, often under version control, so
``actantctl config migrate`` (with ``--dry-run``) is the only writer and always leaves a backup.
"""

from actantd.config.migrations.runner import FileChange, MigrationReport, Skipped, migrate, plan
from actantd.config.migrations.steps import CURRENT_VERSION, STEPS, migrate_document

__all__ = [
    "CURRENT_VERSION",
    "STEPS",
    "FileChange",
    "MigrationReport",
    "Skipped",
    "migrate",
    "migrate_document",
    "plan",
]
