"""A real IMAP server for the tests: Debian's dovecot, started as a subprocess with
its own configuration, port, users and maildirs in a temporary directory (never
the system service)."""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = {login_user}
default_internal_user = {internal_user}
first_valid_uid = 0
mail_location = maildir:{root}/home/%u/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={mail_uid} gid={mail_gid} home={root}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""


def dovecot_binary() -> str | None:
    return shutil.which("dovecot") or next(
        (
            p
            for p in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot")
            if os.path.exists(p)
        ),
        None,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Dovecot:
    """`with Dovecot(users={"robot": "secret"}) as server:` -> server.port."""

    def __init__(self, users: dict[str, str]):
        self.users = users
        self.root = Path(tempfile.mkdtemp(prefix="runs-dovecot-"))
        self.port = _free_port()
        self.process = None

    def __enter__(self):
        binary = dovecot_binary()
        if os.geteuid() == 0:
            # root: the system's unprivileged dovecot users, as the package made them
            login, internal = "dovenull", "dovecot"
            mail = pwd.getpwnam("dovecot")
        else:
            # an ordinary user: everything runs as that user
            mail = pwd.getpwuid(os.geteuid())
            login = internal = mail.pw_name
        self.root.chmod(0o755)
        for sub in ("run", "state", "home"):
            (self.root / sub).mkdir()
        (self.root / "passwd").write_text(
            "".join(
                f"{user}:{{PLAIN}}{password}::::::\n"
                for user, password in self.users.items()
            )
        )
        if os.geteuid() == 0:
            os.chown(self.root / "home", mail.pw_uid, mail.pw_gid)
        conf = self.root / "dovecot.conf"
        conf.write_text(
            CONFIG.format(
                root=self.root,
                port=self.port,
                login_user=login,
                internal_user=internal,
                mail_uid=mail.pw_uid,
                mail_gid=mail.pw_gid,
            )
        )
        self.process = subprocess.Popen(
            [binary, "-F", "-c", str(conf)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.process.stdout.read().decode(errors="replace")
                raise RuntimeError(f"dovecot exited: {output}{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.__exit__(None, None, None)
        raise RuntimeError(f"dovecot did not listen on {self.port}: {self.log()}")

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __exit__(self, *exc):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stdout:
            self.process.stdout.close()
        shutil.rmtree(self.root, ignore_errors=True)
