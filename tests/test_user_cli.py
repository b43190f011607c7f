"""The aicn command for users, run as a user would: real processes against a real `aicn serve`.

One served gateway for the module; each test runs `aicn ...` as a subprocess (under a
pseudo-terminal where a person would watch), with AICN_URL / AICN_TOKEN or a profile file.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pexpect
import pytest

from tests.processes import JOB_PYTHON
from tests.served_gateway import ServedGateway, write_config
from tests.test_auth import CREATE_ACCOUNT, CREATE_TOKEN

BIN = Path(sys.executable).parent
AICN = str(BIN / "aicn")
PROGRESS = (
    "import json, time\n"
    "for step in range(1, 5):\n"
    "    print('AICN_PROGRESS ' + json.dumps({'fraction': step / 4, 'step': step, 'totalSteps': 4, 'message': 'epoch'}), flush=True)\n"
    "    time.sleep(0.4)\n"
    "print('trained', flush=True)\n"
)


class Served:
    def __init__(self, gateway: ServedGateway, tokens: dict[str, str]) -> None:
        self.gateway = gateway
        self.tokens = tokens

    @property
    def url(self) -> str:
        return self.gateway.url

    def env(self, who: str = "alice", **extra: str) -> dict[str, str]:
        environment = {key: value for key, value in os.environ.items() if not key.startswith("AICN_")}
        environment.update(AICN_URL=self.url, AICN_TOKEN=self.tokens[who], PATH=f"{BIN}:{environment.get('PATH', '')}", COLUMNS="140")
        environment.update(extra)
        return environment

    def run(
        self, *arguments: str, who: str = "alice", env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([AICN, *arguments], env=env or self.env(who), capture_output=True, text=True, timeout=timeout)


def _account(http: httpx.Client, admin: str, name: str) -> str:
    headers = {"authorization": f"Bearer {admin}"}
    created = http.post(
        "/graphql", json={"query": CREATE_ACCOUNT, "variables": {"input": {"name": name, "members": [f"{name}@x.org"]}}}, headers=headers
    )
    account_id = created.json()["data"]["createAccount"]["account"]["id"]
    token = {"accountId": account_id, "name": name, "scopes": ["READ", "SUBMIT"]}
    issued = http.post("/graphql", json={"query": CREATE_TOKEN, "variables": {"input": token}}, headers=headers)
    return str(issued.json()["data"]["createApiToken"]["secret"])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    directory = tmp_path_factory.mktemp("user-cli")
    gateway = ServedGateway(write_config(directory, f"sqlite+aiosqlite:///{directory / 'aicn.db'}", None, price="0.50"))
    asyncio.run(gateway.start())
    try:
        with httpx.Client(base_url=gateway.url, timeout=10) as http:
            tokens = {name: _account(http, gateway.token, name) for name in ("alice", "bob")}
        yield Served(gateway, tokens)
    finally:
        asyncio.run(gateway.stop())


def submit(served: Served, *arguments: str, who: str = "alice") -> str:
    done = served.run("job", "submit", "--max-minutes", "1", *arguments, who=who)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_submit_then_watch_under_a_pseudo_terminal(served: Served) -> None:
    line = f"id=$(aicn job submit --name train --cpus 1 --max-minutes 2 -- {shlex.quote(JOB_PYTHON)} -c {shlex.quote(PROGRESS)}) && aicn job watch $id"
    terminal = pexpect.spawn("bash", ["-c", line], env=served.env(), encoding="utf-8", dimensions=(30, 120), timeout=60)
    terminal.expect("train")
    terminal.expect("100%")
    terminal.expect(r"job \S+ SUCCEEDED \(exit code 0\)")
    terminal.expect(pexpect.EOF)
    terminal.close()
    assert terminal.exitstatus == 0, terminal.before


def test_watch_exits_with_the_jobs_own_status(served: Served) -> None:
    job_id = submit(served, "--", JOB_PYTHON, "-c", "import sys; print('bad'); sys.exit(3)")
    watched = served.run("job", "watch", job_id)
    assert watched.returncode == 3, (watched.stdout, watched.stderr)
    assert "FAILED" in watched.stderr and "exit code 3" in watched.stderr
    events = served.run("job", "watch", job_id, "--json")
    assert events.returncode == 3 and json.loads(events.stdout.splitlines()[-1])["state"] == "FAILED"


def test_submit_from_a_file_list_show_logs_and_cancel(served: Served, tmp_path: Path) -> None:
    job_file = tmp_path / "job.toml"
    script = "import os, time\nfor i in range(3):\n    print(f'line {i} {os.environ[\"GREETING\"]}', flush=True)\n    time.sleep(0.3)\n"
    job_file.write_text(
        f'name = "from-file"\ncommand = {json.dumps([JOB_PYTHON, "-c", script])}\nenvironment = {{ GREETING = "hi" }}\n\n[request]\nmaxDurationMinutes = 1\ncpus = 1\n'
    )
    submitted = served.run("job", "submit", "--file", str(job_file), "--json")
    assert submitted.returncode == 0, submitted.stderr
    job = json.loads(submitted.stdout)
    assert job["name"] == "from-file" and job["request"]["maxDurationMinutes"] == 1
    followed = served.run("job", "logs", job["id"], "--follow")
    assert followed.returncode == 0 and followed.stdout.splitlines() == ["line 0 hi", "line 1 hi", "line 2 hi"], followed
    assert served.run("job", "logs", job["id"], "--tail", "1").stdout == "line 2 hi\n"
    listed = json.loads(served.run("job", "list", "--json", "--name", "from-file").stdout)
    assert [entry["id"] for entry in listed] == [job["id"]] and listed[0]["state"] == "SUCCEEDED"
    table = served.run("job", "list", "--state", "succeeded")
    assert table.returncode == 0 and "from-file" in table.stdout and "SUCCEEDED" in table.stdout
    shown = served.run("job", "show", job["id"])
    assert "from-file" in shown.stdout and "SUCCEEDED" in shown.stdout

    sleeper = submit(served, "--name", "sleeper", "--", JOB_PYTHON, "-c", "import time; time.sleep(60)")
    cancelled = served.run("job", "cancel", sleeper, "--json")
    assert cancelled.returncode == 0 and json.loads(cancelled.stdout)["state"] in {"CANCELLING", "CANCELLED"}
    watched = served.run("job", "watch", sleeper)
    assert "CANCELLED" in watched.stderr and watched.returncode == 143  # the job's own status: killed by SIGTERM


def test_centers_offers_and_bill(served: Served) -> None:
    centers = served.run("centers")
    assert centers.returncode == 0 and "local" in centers.stdout and "cpu-core" in centers.stdout and "0.500000" in centers.stdout
    assert json.loads(served.run("centers", "--json").stdout)[0]["kind"] == "LOCAL"
    offers = json.loads(served.run("offers", "--cpus", "2", "--max-minutes", "30", "--json").stdout)
    assert offers[0]["center"]["name"] == "local" and offers[0]["feasible"] is True
    assert "local" in served.run("offers", "--cpus", "2").stdout
    job_id = submit(served, "--", JOB_PYTHON, "-c", "print('billed')")
    assert served.run("job", "watch", job_id).returncode == 0
    bill = served.run("bill", "show", "--json")
    assert bill.returncode == 0, bill.stderr
    document = json.loads(bill.stdout)
    assert document["status"] == "OPEN" and document["total"]["currency"]
    month = document["period"]
    assert f"Bill {month} (OPEN)" in served.run("bill", "show", "--month", month).stdout
    assert "no bill for 1999-01" in served.run("bill", "show", "--month", "1999-01").stderr
    assert "BAD_USER_INPUT" in served.run("bill", "show", "--month", "May").stderr


def one_error_line(done: subprocess.CompletedProcess[str], code: str) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1 and lines[0].startswith(f"aicn: error {code}: "), (done.returncode, done.stderr)
    return lines[0]


def test_bad_input_is_one_clear_line_with_its_code(served: Served, tmp_path: Path) -> None:
    bare = {key: value for key, value in served.env().items() if not key.startswith("AICN_")}
    bare["XDG_CONFIG_HOME"] = str(tmp_path / "nothing")
    line = one_error_line(served.run("job", "list", env=bare), "NOT_CONFIGURED")
    assert "AICN_URL" in line and "AICN_TOKEN" in line and "profile.toml" in line

    profile = tmp_path / "profile.toml"
    profile.write_text(f'url = "{served.url}"\ntoken = "{served.tokens["alice"]}"\n')
    profile.chmod(0o644)
    line = one_error_line(served.run("centers", env={**bare, "AICN_PROFILE": str(profile)}), "PROFILE_PERMISSIONS")
    assert "chmod 600" in line and "0644" in line
    profile.chmod(0o600)
    assert served.run("centers", env={**bare, "AICN_PROFILE": str(profile)}).returncode == 0

    alices = submit(served, "--", JOB_PYTHON, "-c", "print('mine')")
    assert "no job" in one_error_line(served.run("job", "watch", alices, who="bob"), "NOT_FOUND")
    one_error_line(served.run("job", "logs", alices, "--follow", who="bob"), "NOT_FOUND")
    one_error_line(served.run("job", "cancel", alices, who="bob"), "NOT_FOUND")
    one_error_line(served.run("job", "list", env=served.env(AICN_TOKEN="aicn_not-a-real-token")), "UNAUTHENTICATED")
    one_error_line(served.run("centers", env=served.env(AICN_URL="http://127.0.0.1:9")), "GATEWAY_UNREACHABLE")
    one_error_line(served.run("job", "submit", "--name", "x"), "BAD_USER_INPUT")
    refused = one_error_line(served.run("job", "submit", "--accelerator", "no-such-model", "--", "true"), "UNKNOWN_ACCELERATOR")
    assert "accelerator" in refused
    one_error_line(served.run("job", "submit", "--center", "atlantis", "--", "true"), "NOT_FOUND")
    bad_file = tmp_path / "bad.toml"
    bad_file.write_text('name = "x"\ncommand = ["true"]\ncpus = 2\n')
    assert "cpus" in one_error_line(served.run("job", "submit", "--file", str(bad_file)), "BAD_JOB_FILE")


def test_every_help_explains_its_options_and_the_operator_commands_stay(served: Served) -> None:
    import typer

    from aicn.client.app import app

    def walk(command: Any, path: str) -> Iterator[tuple[str, Any]]:
        yield path, command
        for name, child in getattr(command, "commands", {}).items():
            yield from walk(child, f"{path} {name}")

    for path, command in walk(typer.main.get_command(app), "aicn"):
        assert command.help or command.short_help, f"{path} has no help"
        for parameter in command.params:
            if parameter.name != "help":
                assert getattr(parameter, "help", None), f"{path}: {parameter.name} is not explained"
    started = time.monotonic()
    helped = served.run("job", "submit", "--help")
    assert helped.returncode == 0 and "--max-minutes" in helped.stdout and "Wall-clock limit" in helped.stdout
    assert time.monotonic() - started < 20
    top = served.run("--help")
    for command in ("serve", "migrate", "tokens", "job", "centers", "offers", "bill"):
        assert command in top.stdout, command
    assert "--port" in served.run("serve", "--help").stdout
