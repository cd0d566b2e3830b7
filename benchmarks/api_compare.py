"""benchmarks/api.py's measurement for two or more code trees in one run: a
gunicorn server per tree (2 workers x 4 threads, as `./dev up`), each over its own
fresh database, and the slices interleaved across them (tree 1 bare, tree 1
trigger, tree 2 bare, ...), so that a shared box's drifting load weighs on the
before and the after alike. Also prints the CPU time per request of each server's
workers and of this client process.

    .venv/bin/python benchmarks/api_compare.py [--seconds 10] [--rounds 5]
        [--clients 4] TREE [TREE ...]

A TREE is a checkout (e.g. `git worktree add /tmp/before <commit>`). SQLite by
default; with DATABASE_URL (PostgreSQL) each tree gets a scratch database named
after it (`<name>_cmp<i>`, dropped and created), with REDIS_URL each its own
cluster name on that Redis. Prints figures; it is not a test.
"""

import argparse
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import api as bench


def scratch_database(url: str, index: int) -> str:
    import psycopg

    base, name = url.rsplit("/", 1)
    name = f"{name}_cmp{index}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"


def cpu_seconds(processes) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in processes)


def client_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("trees", nargs="+", type=Path)
    args = parser.parse_args()
    database_url = os.environ.get("DATABASE_URL", "")
    servers, tokens, bases = [], {}, {}
    try:
        for index, tree in enumerate(args.trees):
            tmp = tempfile.mkdtemp(prefix="runs-bench-api-compare-")
            env = {
                **os.environ,
                "RUNS_VAR_DIR": tmp,
                "RUNS_API_TRIGGER_RATE": "",
                "DEBUG": "0",
                "SECRET_KEY": secrets.token_urlsafe(50),
                "LOG_LEVEL": "ERROR",
                "Q_CLUSTER_NAME": f"bench-compare-{index}",
                "DATABASE_URL": scratch_database(database_url, index)
                if database_url
                else f"sqlite:///{tmp}/bench.sqlite3",
            }
            bench.ROOT = tree.resolve()
            tokens[tree] = bench.setup(env)
            port = bench.free_port()
            bases[tree] = f"http://127.0.0.1:{port}"
            command = [
                sys.executable,
                "-m",
                "gunicorn",
                "runs_project.wsgi:application",
            ]
            command += ["--bind", f"127.0.0.1:{port}", "--workers", "2"]
            command += ["--threads", "4", "--no-control-socket"]
            servers.append(
                subprocess.Popen(
                    command,
                    cwd=tree,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.STDOUT,
                )
            )
        for base in bases.values():
            for _ in range(100):
                try:
                    httpx.get(f"{base}/api/v1/me/", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
        body = json.dumps({"inputs": [{"subject": "bench"}]})
        headers = {"Content-Type": "application/json"}
        endpoints = {
            "bare": lambda client: client.get("/api/v1/me/"),
            "trigger": lambda client: client.post(
                "/api/v1/automations/bench/runs/", content=body, headers=headers
            ),
        }
        workers = {
            tree: psutil.Process(server.pid).children()
            for tree, server in zip(args.trees, servers, strict=True)
        }
        for tree in args.trees:  # warm up
            for call in endpoints.values():
                bench.hammer(bases[tree], tokens[tree], 1, args.clients, call)
        # (tree, endpoint) -> [requests, seconds, server cpu, client cpu]
        totals = {}
        for _ in range(args.rounds):
            for tree in args.trees:
                for name, call in endpoints.items():
                    server_cpu, client_cpu = (
                        cpu_seconds(workers[tree]),
                        (client_cpu_seconds()),
                    )
                    rps, counts = bench.hammer(
                        bases[tree],
                        tokens[tree],
                        args.seconds / args.rounds,
                        args.clients,
                        call,
                    )
                    if not set(counts) <= {200, 202}:
                        raise SystemExit(f"{tree} {name}: statuses {counts}")
                    done = sum(counts.values())
                    total = totals.setdefault((tree, name), [0, 0.0, 0.0, 0.0])
                    total[0] += done
                    total[1] += done / rps
                    total[2] += cpu_seconds(workers[tree]) - server_cpu
                    total[3] += client_cpu_seconds() - client_cpu
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(60)
    print(
        f"API comparison: gunicorn 2 workers x 4 threads, "
        f"{'postgresql' if database_url else 'sqlite'}"
        f"{' + Redis broker' if os.environ.get('REDIS_URL') else ''}, "
        f"{args.clients} clients, {args.seconds:g} s each in {args.rounds} "
        f"interleaved slices, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    for tree in args.trees:
        rate, cpu = {}, {}
        for name in endpoints:
            done, seconds, server_cpu, client_cpu = totals[(tree, name)]
            rate[name] = done / seconds
            cpu[name] = (server_cpu / done * 1000, client_cpu / done * 1000)
        print(
            f"  {tree!s:30s} bare {rate['bare']:7.1f} req/s  trigger "
            f"{rate['trigger']:7.1f} req/s  ratio {rate['trigger'] / rate['bare']:.2f}"
            f"   CPU ms per request (server + client): bare "
            f"{cpu['bare'][0]:.2f} + {cpu['bare'][1]:.2f}, trigger "
            f"{cpu['trigger'][0]:.2f} + {cpu['trigger'][1]:.2f}"
        )


if __name__ == "__main__":
    main()
