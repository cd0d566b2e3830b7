import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

MESSAGES = Path(__file__).parent / "messages"


def eml(name: str) -> bytes:
    return (MESSAGES / name).read_bytes()


def receive(raw: bytes, *args) -> tuple[int, str, str]:
    """`manage.py receive_email` with `raw` on stdin: (exit code, stdout, error)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(
            "receive_email", *args, stdin=io.BytesIO(raw), stdout=out, stderr=err
        )
    except CommandError as exc:
        return exc.returncode, out.getvalue(), str(exc)
    return 0, out.getvalue(), err.getvalue()


def stored_files(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def invoices(automation):
    """An automation started by mail to invoices@runs.example."""
    return automation(
        "builtin.echo",
        slug="invoice-intake",
        triggers=[{"kind": "email", "address": "invoices@runs.example"}],
    )
