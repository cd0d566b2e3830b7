"""What a robot leaves behind: the files of its artifacts directory (`output/`,
or its robot.yaml's artifactsDir) are kept as its step run's files, and its console
log is stored without terminal escape codes.

The directory is the robot's, so nothing in it is trusted: only regular files are
read (a symlink could point anywhere the worker may read), at most
ROBOT_ARTIFACTS_MAX of them, each at most RUNS_ROBOT_MAX_FILE_BYTES; what is left
out is said in the step run's log.
"""

import logging
import stat
from pathlib import Path

from django.core.files import File

from ..conf import runs_settings
from ..files import content_sha256
from ..models import WorkItemFile
from .console import ansi_strip  # noqa: F401  (its home was here)
from .outputs import _storage_name

log = logging.getLogger("runs.robots")

ROBOT_ARTIFACTS_MAX = 200


def artifacts_keep(step_run, directory: Path) -> list[str]:
    """Store the regular files under `directory` as `step_run`'s files (name: the
    path under it). Returns notes on what was left out, for the log."""
    notes: list[str] = []
    if not directory.is_dir() or directory.is_symlink():
        return notes
    limit = runs_settings.ROBOT_MAX_FILE_BYTES
    kept = 0
    for path in sorted(directory.rglob("*")):
        try:
            mode = path.lstat().st_mode
        except OSError:
            continue
        if stat.S_ISDIR(mode):
            continue
        name = path.relative_to(directory).as_posix()[:255]
        if not stat.S_ISREG(mode):
            notes.append(f"artifact {name}: not a regular file, not kept")
            continue
        size = path.lstat().st_size
        if size > limit:
            notes.append(f"artifact {name}: {size} bytes, over {limit}, not kept")
            continue
        if kept >= ROBOT_ARTIFACTS_MAX:
            notes.append(
                f"more than {ROBOT_ARTIFACTS_MAX} artifacts: the rest not kept"
            )
            break
        with open(path, "rb") as handle:
            upload = File(handle, name=name)
            found = WorkItemFile(
                step_run=step_run,
                name=name,
                size=size,
                content_type="application/octet-stream",
                sha256=content_sha256(upload),
            )
            found.file.save(_storage_name(name), upload, save=False)
            found.save()
        kept += 1
    if kept:
        log.info("step run %s: %s artifact(s) kept", step_run.pk, kept)
    return notes
