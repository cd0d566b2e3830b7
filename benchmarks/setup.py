"""What the engine benchmarks share: a throwaway database and Django set up for it."""

import os
import secrets
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def django_for_benchmark(*, workers: int, cluster_name: str) -> str:
    """Set Django up on a throwaway database (SQLite in a new folder, unless
    DATABASE_URL names one), with `workers` django-q2 workers, quiet logs and a key
    made for this process (the settings need one), and migrate it. Returns the
    folder (RUNS_VAR_DIR)."""
    sys.path.insert(0, str(ROOT))
    tmp = tempfile.mkdtemp(prefix="runs-bench-")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{tmp}/bench.sqlite3")
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    os.environ.update(
        DJANGO_SETTINGS_MODULE="runs_project.settings",
        RUNS_VAR_DIR=tmp,
        Q_WORKERS=str(workers),
        Q_CLUSTER_NAME=cluster_name,
        LOG_LEVEL="ERROR",
        RUNS_LOG_LEVEL="ERROR",
        PYTHONPATH=str(ROOT),
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return tmp
