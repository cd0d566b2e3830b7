"""Screenshots of the control room's main pages for the README and docs/screenshots/.

    ./dev screenshots            (or: python -m tests.admin.browser.screenshots [DIR])

Everything happens in a throwaway folder (RUNS_VAR_DIR, a new temporary directory:
its own SQLite database, media, mail and keys), never the user's var/: migrate, seed
the credit-union demo (seed_demo runs its demo runs until they are idle), run a few
more of its automations, start Django's development server on a free port, log in as
a throwaway superuser with Debian's chromium (the browser tests' launcher) at 1440 px
and write one PNG per page. The folder is removed afterwards.
"""

import base64
import io
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
OUT = ROOT / "docs" / "screenshots"
WIDTH, HEIGHT, MAX_HEIGHT = 1440, 900, 2200
USERNAME = "screenshots"
# settings that would point this run at the user's database, broker, cache or files
NOT_INHERITED = {
    "DATABASE_URL",
    "REDIS_URL",
    "CACHE_URL",
    "SECRET_KEY",
    "MEDIA_ROOT",
    "STATIC_ROOT",
    "EMAIL_FILE_PATH",
    "SQLITE_TEST_NAME",
}


def throwaway_environment(var_dir: Path) -> dict:
    """The environment of this process and its server: DEBUG on (the development
    server serves the static files), every file under `var_dir`, fresh keys."""
    from cryptography.fernet import Fernet

    env = {key: value for key, value in os.environ.items() if key not in NOT_INHERITED}
    env.update(
        DJANGO_SETTINGS_MODULE="runs_project.settings",
        DEBUG="1",
        RUNS_VAR_DIR=str(var_dir),
        RUNS_LEDGER_SIGNING_KEY=base64.b64encode(os.urandom(32)).decode(),
        RUNS_SECRET_KEYS=Fernet.generate_key().decode(),
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
    )
    return env


def seed(password: str) -> dict:
    """The demo, a few more runs, the login; the paths of the pages to take."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.urls import reverse

    from automations.models import Automation
    from runs.engine import run_until_idle
    from runs.models import Run, WorkItem
    from runs.services import run_start
    from runs.states import WorkItemState

    call_command("migrate", verbosity=0, interactive=False)
    call_command("seed_demo", stdout=io.StringIO())
    for slug in ("kyc-review", "supplier-attestation", "kyc-review"):
        run = run_start(
            automation=Automation.objects.get(slug=slug), actor_label="screenshots"
        )
        run_until_idle(run)
    get_user_model().objects.create_superuser(
        USERNAME, email="screenshots@cu.example", password=password
    )
    awaiting = (
        WorkItem.objects.filter(state=WorkItemState.AWAITING_INPUT)
        .order_by("-pk")
        .first()
    )
    # the run page of the run with the most to show: most work items
    busiest = Run.objects.order_by("-total_items", "-created_at").first()
    kyc = Automation.objects.get(slug="kyc-review")
    return {
        "dashboard": reverse("admin:index"),
        "runs-list": reverse("admin:runs_run_changelist"),
        "run-page": reverse("admin:runs_run_change", args=[busiest.pk]),
        "approval-page": reverse(
            "admin:runs_run_decide", args=[awaiting.run_id, awaiting.pk]
        ),
        "automation-page": reverse(
            "admin:automations_automation_change", args=[kyc.pk]
        ),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(env: dict, port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/admin/login/"
    for _ in range(60):
        try:
            urllib.request.urlopen(url, timeout=2)
            return server
        except OSError:
            if server.poll() is not None:
                raise SystemExit(f"the server ended ({server.returncode})") from None
            time.sleep(0.5)
    server.terminate()
    raise SystemExit(f"the server did not answer on {url}")


def take(pages: dict, base: str, password: str, out: Path, scheme="light") -> list:
    from playwright.sync_api import sync_playwright

    from .conftest import launch
    from .support import login

    written = []
    with sync_playwright() as manager:
        browser = launch(manager)
        page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
        page.emulate_media(color_scheme=scheme)
        page.base = base
        login(page, USERNAME, password)
        for name, path in pages.items():
            page.goto(base + path)
            page.wait_for_load_state("networkidle")
            height = page.evaluate("document.documentElement.scrollHeight")
            target = out / f"{name}.png"
            page.screenshot(
                path=str(target),
                full_page=True,
                clip={
                    "x": 0,
                    "y": 0,
                    "width": WIDTH,
                    "height": min(height, MAX_HEIGHT),
                },
            )
            written.append(target)
        browser.close()
    return written


def main(argv) -> int:
    out = Path(argv[0]).resolve() if argv else OUT
    out.mkdir(parents=True, exist_ok=True)
    var_dir = Path(tempfile.mkdtemp(prefix="runs-screenshots-"))
    env = throwaway_environment(var_dir)
    os.environ.clear()
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    password = secrets.token_urlsafe(16)
    server = None
    try:
        pages = seed(password)
        port = free_port()
        server = serve(env, port)
        written = take(pages, f"http://127.0.0.1:{port}", password, out)
        written += take(
            {"dashboard-dark": pages["dashboard"], "run-page-dark": pages["run-page"]},
            f"http://127.0.0.1:{port}",
            password,
            out,
            scheme="dark",
        )
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        shutil.rmtree(var_dir, ignore_errors=True)
    for path in written:
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
