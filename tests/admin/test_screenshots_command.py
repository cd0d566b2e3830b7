"""`./dev screenshots` works on a throwaway folder, never the user's var/ or the
database and broker of the environment it is started from."""

from tests.admin.browser.screenshots import throwaway_environment


def test_the_screenshots_run_on_their_own_folder_and_keys(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1/runs")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("SECRET_KEY", "the-users-key")
    monkeypatch.setenv("RUNS_VAR_DIR", "/home/someone/runs/var")
    monkeypatch.setenv("MEDIA_ROOT", "/home/someone/runs/media")
    env = throwaway_environment(tmp_path)
    assert env["RUNS_VAR_DIR"] == str(tmp_path)
    assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "MEDIA_ROOT"}.isdisjoint(env)
    assert env["DEBUG"] == "1"
    assert (
        env["RUNS_LEDGER_SIGNING_KEY"]
        != throwaway_environment(tmp_path)["RUNS_LEDGER_SIGNING_KEY"]
    )
