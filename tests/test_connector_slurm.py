"""The SLURM connector against the real slurmrestd, plus what only SLURM does.

Needs the cluster of ``scripts/start-slurm.sh`` (credentials in ``/run/slurm-ci.env``,
or ``SLURMRESTD_URL``/``SLURM_USER``/``SLURM_JWT``). Without it the live tests are
skipped on a developer machine and fail in CI (``CI=true``). The decoding tests read
real slurmrestd 22.05 bodies from ``tests/data/slurm`` and need no cluster.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.base import CenterJobState, StatusQuery
from connectors.errors import CenterUnreachable, SubmissionRejected
from connectors.slurm import api
from connectors.slurm.auth import MintedToken, mint_token
from connectors.slurm.connector import SlurmConnector, _listing_is_cheaper
from connectors.slurm.script import progress_from_comment
from tests.connector_contract import PYTHON, ConnectorContract, new_reference, wait_for
from tests.leftovers import RemembersSubmissions

DATA = Path(__file__).with_name("data") / "slurm"
GPU_MODEL = "nvidia-a100-80gb"
GRES_MODELS = {"a100": GPU_MODEL}
DEFAULT_KEY_FILE = "/var/lib/slurm/slurmctld/jwt_hs256.key"


def _body(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((DATA / name).read_text())
    return body


# ---------------------------------------------------------------------- the live cluster


def _cluster_settings() -> dict[str, str]:
    settings: dict[str, str] = {}
    env_file = Path(os.environ.get("SLURM_ENV_FILE", "/run/slurm-ci.env"))
    try:
        for line in env_file.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep:
                settings[key.strip()] = value.strip()
    except OSError:
        pass
    for key in ("SLURMRESTD_URL", "SLURM_USER", "SLURM_JWT"):
        if os.environ.get(key):
            settings[key] = os.environ[key]
    settings.setdefault("SLURM_USER", "root")
    return settings


@pytest.fixture(scope="session")
def cluster() -> dict[str, str]:
    """The cluster's URL, user and token, once it answered an authenticated ping."""
    settings = _cluster_settings()
    problem = None
    if not settings.get("SLURMRESTD_URL") or not settings.get("SLURM_JWT"):
        problem = "no slurmrestd credentials (run scripts/start-slurm.sh)"
    else:
        headers = {"X-SLURM-USER-NAME": settings["SLURM_USER"], "X-SLURM-USER-TOKEN": settings["SLURM_JWT"]}
        try:
            response = httpx.get(f"{settings['SLURMRESTD_URL']}{api.API_PREFIX}/ping", headers=headers, timeout=5)
            if response.status_code != 200:
                problem = f"slurmrestd answered the ping with HTTP {response.status_code}"
        except httpx.HTTPError as error:
            problem = f"slurmrestd is unreachable: {type(error).__name__}"
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    return settings


@pytest.fixture(scope="session")
def output_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="aicn-slurm-tests-", dir="/tmp"))
    directory.chmod(0o1777)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


class _CleaningSlurmConnector(RemembersSubmissions, SlurmConnector):
    """Remembers what it submitted, so a failing test leaves nothing running on the shared center."""


def _build(cluster: dict[str, str], output_dir: Path, **overrides: Any) -> _CleaningSlurmConnector:
    options: dict[str, Any] = {
        "token": cluster["SLURM_JWT"],
        "output_dir": output_dir,
        "gres_models": GRES_MODELS,
        "progress_interval": 0.2,
    }
    options.update(overrides)
    connector = _CleaningSlurmConnector("slurm-test", cluster["SLURMRESTD_URL"], cluster["SLURM_USER"], **options)
    connector.submitted = []
    return connector


@pytest.fixture
async def connector(cluster: dict[str, str], output_dir: Path) -> AsyncIterator[SlurmConnector]:
    slurm = _build(cluster, output_dir)
    await slurm.start()
    try:
        yield slurm
    finally:
        try:
            await slurm.cancel_leftovers()
        finally:
            await slurm.close()


@pytest.mark.slurm
class TestSlurmContract(ConnectorContract):
    settle_seconds = 60.0
    time_limit_seconds = 60.0  # Slurm's limits are whole minutes
    time_limit_wait_seconds = 150.0  # slurmctld checks limits every 30 s, then signals


# ---------------------------------------------------------------------- decoding real bodies


@pytest.mark.parametrize(
    ("name", "state", "exit_code", "reason_part"),
    [
        ("job-completed.json", CenterJobState.SUCCEEDED, 0, None),
        ("job-running.json", CenterJobState.RUNNING, None, None),
        ("job-cancelled.json", CenterJobState.CANCELLED, 143, "CANCELLED"),
        ("job-cancelled-pending.json", CenterJobState.CANCELLED, None, "CANCELLED"),
        ("job-failed.json", CenterJobState.FAILED, 3, "EXIT_CODE"),
        ("job-timeout.json", CenterJobState.FAILED, 143, "TIME_LIMIT"),
        ("job-pending.json", CenterJobState.QUEUED, None, "Resources"),
    ],
)
def test_states_and_exit_codes_of_real_bodies(name: str, state: CenterJobState, exit_code: int | None, reason_part: str | None) -> None:
    (record,) = api.parse_jobs(_body(name))
    outcome = api.job_outcome(record)
    assert outcome.state is state
    assert outcome.exit_code == exit_code
    if reason_part is None:
        assert outcome.reason is None
    else:
        assert outcome.reason and reason_part in outcome.reason
    if state.terminal:
        assert outcome.finished_at is not None and outcome.finished_at.tzinfo is UTC
        if "pending" in name:  # Slurm sets start_time when it cancels a pending job
            assert outcome.started_at is None
        else:
            assert outcome.started_at is not None and outcome.started_at <= outcome.finished_at
    else:
        assert outcome.finished_at is None


def test_the_completed_body_times_are_aware_utc() -> None:
    (record,) = api.parse_jobs(_body("job-completed.json"))
    outcome = api.job_outcome(record)
    assert outcome.started_at == datetime.fromtimestamp(1795920272, UTC)
    assert outcome.finished_at == datetime.fromtimestamp(1795920277, UTC)


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [(0, (0, None)), (768, (3, None)), (2048, (8, None)), (15, (None, 15)), (9, (None, 9)), (36608, (143, None)), (None, (None, None))],
)
def test_exit_status_is_a_raw_wait_status(raw: int | None, decoded: tuple[int | None, int | None]) -> None:
    assert api.decode_exit_status(raw) == decoded


@pytest.mark.parametrize(
    ("slurm_state", "reason_part"),
    [
        ("NODE_FAIL", "NODE_FAIL"),
        ("OUT_OF_MEMORY", "OUT_OF_MEMORY"),
        ("BOOT_FAIL", "BOOT_FAIL"),
        ("DEADLINE", "DEADLINE"),
        ("PREEMPTED", "PREEMPTED"),
    ],
)
def test_abnormal_ends_fail_with_a_reason(slurm_state: str, reason_part: str) -> None:
    body = _body("job-completed.json")
    body["jobs"][0]["job_state"] = slurm_state
    body["jobs"][0]["exit_code"] = 9
    outcome = api.job_outcome(api.parse_jobs(body)[0])
    assert outcome.state is CenterJobState.FAILED
    assert outcome.reason and outcome.reason.startswith(reason_part)


def test_error_bodies() -> None:
    (not_found,) = api.errors_of(_body("error-job-not-found.json"))
    assert not_found.number == api.JOB_NOT_FOUND
    (bad_token,) = api.errors_of(_body("error-bad-token.json"))
    assert bad_token.number == -1
    assert api.release_of(_body("ping.json")) == "22.05.8"
    assert api.default_partition(_body("partitions.json")) == "debug"


def test_gres_strings() -> None:
    assert api.parse_gres("gpu:a100:2(S:0-1),gpu:v100:1,mps:200") == (
        api.GresCount("gpu", "a100", 2),
        api.GresCount("gpu", "v100", 1),
        api.GresCount("mps", None, 200),
    )
    assert api.parse_gres("gpu:a100:1(IDX:0,2),gpu:4") == (api.GresCount("gpu", "a100", 1), api.GresCount("gpu", None, 4))
    assert api.parse_gres("gpu:a100:0(IDX:N/A)") == (api.GresCount("gpu", "a100", 0),)
    assert api.parse_gres("") == () and api.parse_gres(None) == ()


async def test_gres_gpus_map_to_catalog_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """A real /nodes body of the test cluster with one of its two a100 in use; v100 is not mapped."""
    nodes = _body("nodes-gres.json")
    nodes["nodes"][0]["gres"] += ",gpu:v100:4"
    slurm = SlurmConnector("offline", "http://127.0.0.1:9", "root", token="t", gres_models=GRES_MODELS, partition="debug")

    async def fake_checked(method: str, path: str) -> dict[str, Any]:
        assert path == "/nodes"
        return nodes

    monkeypatch.setattr(slurm, "_checked", fake_checked)
    capacity = {entry.accelerator: entry for entry in await slurm.capacity()}
    assert set(capacity) == {"cpu-core", GPU_MODEL}  # unmapped GRES are left out
    assert (capacity[GPU_MODEL].devices_total, capacity[GPU_MODEL].devices_free) == (2, 1)
    assert (capacity["cpu-core"].devices_total, capacity["cpu-core"].devices_free) == (2, 0)
    assert capacity[GPU_MODEL].partition == "debug"


def test_nodes_out_of_service_offer_nothing() -> None:
    body = _body("nodes.json")
    body["nodes"][0]["state_flags"] = ["DRAIN"]
    assert not api.parse_nodes(body)[0].usable
    body["nodes"][0].update(state="down", state_flags=[])
    assert not api.parse_nodes(body)[0].usable
    body["nodes"][0].update(state="mixed")
    assert api.parse_nodes(body)[0].usable


def test_progress_comment_round_trip() -> None:
    comment = '#7@1795921243.883986 AICN_PROGRESS {"fraction": 0.5, "step": 5, "totalSteps": 10, "message": "it\'s \\"ok\\""}'
    (report,) = progress_from_comment(comment, 6)
    assert report.ordinal == 7 and report.fraction == 0.5 and report.message == 'it\'s "ok"'
    assert report.at == datetime.fromtimestamp(1795921243.883986, UTC)
    assert progress_from_comment(comment, 7) == ()
    assert progress_from_comment("some comment of an operator", 0) == ()
    assert progress_from_comment("#3 AICN_PROGRESS not json", 0) == ()


def test_status_strategy() -> None:
    assert _listing_is_cheaper(1, None)  # the first call learns the cluster's size
    assert not _listing_is_cheaper(1, 30)
    assert _listing_is_cheaper(5, 30)
    assert not _listing_is_cheaper(50, 10_000)


def test_submit_body_shape() -> None:
    request = api.JobRequest(
        name="aicn-ref",
        script="#!/bin/bash\ntrue\n",
        environment={"PATH": "/bin"},
        working_directory="/tmp",
        standard_output="/tmp/%j.out",
        time_limit_minutes=api.time_limit_minutes(61),
        cpus_per_task=1,
        gres="gpu:a100:1",
    )
    job = api.job_submit_body(request)["job"]
    assert job["time_limit"] == 2 and job["gres"] == "gpu:a100:1" and job["environment"] == {"PATH": "/bin"}
    assert "standard_error" not in job  # stderr goes with stdout
    assert api.time_limit_minutes(1.5) == 1 and api.time_limit_minutes(60) == 1 and api.time_limit_minutes(120.1) == 3


# ---------------------------------------------------------------------- tokens and errors


def test_a_minted_token_is_an_hs256_jwt() -> None:
    token = mint_token(b"k" * 32, "alice", 1000, 600)
    header, claims, signature = token.split(".")

    def pad(part: str) -> str:
        return part + "=" * (-len(part) % 4)

    assert json.loads(base64.urlsafe_b64decode(pad(header))) == {"alg": "HS256", "typ": "JWT"}
    assert json.loads(base64.urlsafe_b64decode(pad(claims))) == {"iat": 1000, "exp": 1600, "sun": "alice"}
    expected = hmac.new(b"k" * 32, f"{header}.{claims}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(pad(signature)) == expected


def test_minted_tokens_are_renewed_before_they_expire(tmp_path: Path) -> None:
    key = tmp_path / "jwt.key"
    key.write_bytes(os.urandom(32))
    now = [1000.0]
    source = MintedToken(key, "root", lifespan=600, margin=60, clock=lambda: now[0])
    first = source.current()
    now[0] = 1500
    assert source.current() == first
    now[0] = 1541
    assert source.current() != first
    assert first not in repr(source) and "hidden" in repr(source)


@pytest.mark.slurm
async def test_a_minted_token_is_accepted_by_slurmrestd(cluster: dict[str, str], output_dir: Path) -> None:
    key_file = Path(os.environ.get("SLURM_JWT_KEY", DEFAULT_KEY_FILE))
    if not os.access(key_file, os.R_OK):
        pytest.skip(f"cannot read the cluster's JWT key {key_file}")
    slurm = SlurmConnector(
        "minted", cluster["SLURMRESTD_URL"], cluster["SLURM_USER"], jwt_key_file=key_file, output_dir=output_dir, token_lifespan=120
    )
    await slurm.start()
    try:
        description = await slurm.describe()
        assert description.version and description.version.startswith("22.")
    finally:
        await slurm.close()


@pytest.mark.slurm
async def test_a_bad_token_is_unreachable_and_never_shown(cluster: dict[str, str], output_dir: Path) -> None:
    secret = "eyJhbGciOiJIUzI1NiJ9.eyJzdW4iOiJyb290In0.not-the-real-signature-c0ffee"
    slurm = SlurmConnector("bad-token", cluster["SLURMRESTD_URL"], cluster["SLURM_USER"], token=secret, output_dir=output_dir)
    await slurm.start()
    try:
        for call in (slurm.describe(), slurm.capacity(), slurm.status([StatusQuery("1"), StatusQuery("2")])):
            with pytest.raises(CenterUnreachable) as caught:
                await call
            assert secret not in str(caught.value) and secret not in repr(caught.value)
            assert "token" in str(caught.value)
        assert secret not in repr(slurm)
    finally:
        await slurm.close()


async def test_nothing_listening_is_unreachable(output_dir: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    slurm = SlurmConnector("nobody", f"http://127.0.0.1:{port}", "root", token="secret-token-value", output_dir=output_dir)
    await slurm.start()
    try:
        with pytest.raises(CenterUnreachable) as caught:
            await slurm.describe()
        assert "secret-token-value" not in str(caught.value)
    finally:
        await slurm.close()


# ---------------------------------------------------------------------- live SLURM-only behaviour


@pytest.mark.slurm
async def test_the_argv_reaches_the_program_verbatim(connector: SlurmConnector) -> None:
    words = ["a b", "$HOME", "`id`", "it's", '"quoted"', "*", "; exit 7", "-n", ""]
    script = "import json, sys; print(json.dumps(sys.argv[1:]))"
    spec = ConnectorContract().spec([PYTHON, "-c", script, *words])
    submission = await connector.submit(spec)
    await wait_for(connector, submission.external_id, [CenterJobState.SUCCEEDED], 60)
    assert json.loads(await connector.logs(submission.external_id, tail_lines=1)) == words


@pytest.mark.slurm
async def test_a_gpu_job_gets_its_gres_and_uses_capacity(connector: SlurmConnector) -> None:
    capacity = {entry.accelerator: entry for entry in await connector.capacity()}
    if GPU_MODEL not in capacity:
        pytest.skip("the test cluster declares no gpu:a100 GRES (SLURM_GPUS)")
    total = capacity[GPU_MODEL].devices_total
    with pytest.raises(SubmissionRejected):
        await connector.submit(ConnectorContract().spec([PYTHON, "-c", "pass"], accelerator=GPU_MODEL, devices=total + 1))
    with pytest.raises(SubmissionRejected):
        await connector.submit(ConnectorContract().spec([PYTHON, "-c", "pass"], accelerator="nvidia-h100-80gb"))
    script = "import os, time; print('gpus=' + os.environ.get('CUDA_VISIBLE_DEVICES', 'none'), flush=True); time.sleep(30)"
    submission = await connector.submit(ConnectorContract().spec([PYTHON, "-c", script], accelerator=GPU_MODEL, devices=1))
    await wait_for(connector, submission.external_id, [CenterJobState.RUNNING], 60)
    during = {entry.accelerator: entry for entry in await connector.capacity()}
    assert during[GPU_MODEL].devices_free == capacity[GPU_MODEL].devices_free - 1
    output = ""
    for _ in range(150):  # RUNNING comes before the program has printed anything
        output = await connector.logs(submission.external_id)
        if "gpus=" in output:
            break
        await asyncio.sleep(0.2)
    await connector.cancel(submission.external_id)
    await wait_for(connector, submission.external_id, [CenterJobState.CANCELLED], 60)
    assert "gpus=0" in output


@pytest.mark.slurm
async def test_progress_ordinals_only_grow_across_polls(connector: SlurmConnector) -> None:
    script = (
        "import json, time\n"
        "for step in range(1, 11):\n"
        "    print('AICN_PROGRESS ' + json.dumps({'step': step, 'totalSteps': 10}), flush=True)\n"
        "    time.sleep(0.15)\n"
    )
    submission = await connector.submit(ConnectorContract().spec([PYTHON, "-c", script]))
    seen: list[int] = []
    last = 0
    for _ in range(300):
        status = (await connector.status([StatusQuery(submission.external_id, last)]))[submission.external_id]
        for report in status.progress:
            assert report.ordinal > last
            last = report.ordinal
            seen.append(report.step or 0)
        if status.state.terminal:
            break
        await asyncio.sleep(0.1)
    assert status.state is CenterJobState.SUCCEEDED
    assert last == 10 and seen[-1] == 10 and seen == sorted(seen)


@pytest.mark.slurm
async def test_many_jobs_in_one_status_call_by_either_strategy(connector: SlurmConnector) -> None:
    submissions = [await connector.submit(ConnectorContract().spec([PYTHON, "-c", "pass"])) for _ in range(3)]
    ids = [submission.external_id for submission in submissions]
    for job_id in ids:
        await wait_for(connector, job_id, [CenterJobState.SUCCEEDED], 60)
    queries = [StatusQuery(job_id) for job_id in ids] + [StatusQuery("999999998"), StatusQuery("not-a-job")]
    connector._cluster_jobs = None  # listing
    listed = await connector.status(queries)
    connector._cluster_jobs = 1_000_000  # one GET per job
    one_by_one = await connector.status(queries)
    assert set(listed) == set(ids) and listed == one_by_one


@pytest.mark.slurm
async def test_the_same_reference_survives_a_new_connector(cluster: dict[str, str], output_dir: Path, connector: SlurmConnector) -> None:
    spec = ConnectorContract().spec([PYTHON, "-c", "pass"], reference=new_reference())
    first = await connector.submit(spec)
    other = _build(cluster, output_dir)
    await other.start()
    try:
        again = await other.submit(spec)
    finally:
        await other.close()
    assert again.external_id == first.external_id
