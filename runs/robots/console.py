"""A robot's console log as a person reads it: without terminal escape codes
and without the server's temporary paths. No imports of the app: the runner
(storing the log), the step run admin and the API (showing it) all use it."""

import re
import tempfile

# CSI sequences (colours, cursor moves), OSC sequences (titles, links) and the
# two-character escapes; what a terminal would act on rather than print
ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|\x1b[@-Z\\-_]"
)


# where a robot runs: its temporary directory (runner: tempfile, prefix
# runs-robot-) names the server's temp directory and says nothing to a reader
ROBOT_TEMP_PLACEHOLDER = "<robot-temp>"
SERVER_TEMP_PLACEHOLDER = "<tmp>"


def ansi_strip(text: str) -> str:
    return ANSI.sub("", text)


def _temp_patterns():
    temp = re.escape(tempfile.gettempdir().rstrip("/"))
    return (
        re.compile(temp + r"/runs-robot-[A-Za-z0-9_]+"),
        # any other path under the server's temp directory (not /tmpfoo)
        re.compile(r"(?<![\w/.])" + temp + r"(?=/)"),
    )


def robot_log_clean(text: str) -> str:
    """A robot's console as a person should read it: no terminal escape codes,
    and the server's temporary paths as placeholders (`<robot-temp>/output/x.png`,
    `<tmp>/…`). Applied when the log is stored and again when it is shown (rows
    stored before this rule)."""
    robot_temp, server_temp = _temp_patterns()
    text = robot_temp.sub(ROBOT_TEMP_PLACEHOLDER, ansi_strip(text))
    return server_temp.sub(SERVER_TEMP_PLACEHOLDER, text)
