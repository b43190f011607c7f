"""The user commands of ``aicn``: jobs, centers, offers and bills, against any gateway over GraphQL.

The gateway and token come from AICN_URL / AICN_TOKEN or the profile file (config.py). Tables are
for people, ``--json`` for scripts; every failure is one line, ``aicn: error CODE: message``, and
exit status 1 (``job watch`` exits with the job's own status once it has ended).
"""

from __future__ import annotations

import asyncio
import base64
import enum
import json
import re
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from aicn.client import operations as ops
from aicn.client import render, watch
from aicn.client.api import Gateway, raise_user_errors
from aicn.client.config import connection
from aicn.client.errors import ClientError
from aicn.client.jobfile import read_job_file

T = TypeVar("T")

app = typer.Typer(
    help="The aicn commands for users: your jobs, the centers, offers and bills of a gateway (AICN_URL, AICN_TOKEN).",
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
job_app = typer.Typer(no_args_is_help=True, help="Submit, list, watch, follow and cancel your jobs.")
bill_app = typer.Typer(no_args_is_help=True, help="Your bills.")
app.add_typer(job_app, name="job")
app.add_typer(bill_app, name="bill")

JsonOption = Annotated[bool, typer.Option("--json", help="Print the gateway's answer as JSON (for scripts) instead of a table.")]
DEFAULT_MINUTES = 60.0
_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


class Policy(enum.StrEnum):
    CHEAPEST = "CHEAPEST"
    EARLIEST_START = "EARLIEST_START"
    DATA_LOCAL = "DATA_LOCAL"


def run(work: Callable[[Gateway], Coroutine[Any, Any, T]]) -> T:
    """Run one command's conversation with the gateway; a ClientError is its one line and exit 1."""

    async def talk() -> T:
        async with Gateway(connection()) as gateway:
            return await work(gateway)

    try:
        return asyncio.run(talk())
    except ClientError as error:
        print(error.line(), file=sys.stderr)
        raise typer.Exit(1) from None


def job_global_id(job_id: str) -> str:
    """A job's id as the gateway gives it; a bare number is taken as the job's number."""
    job_id = job_id.strip()
    if job_id.isdigit():
        return base64.urlsafe_b64encode(f"Job:{int(job_id)}".encode()).decode().rstrip("=")
    return job_id


async def load_job(gateway: Gateway, job_id: str) -> dict[str, Any]:
    node = (await gateway.execute(ops.JOB, {"id": job_global_id(job_id)}))["node"]
    if not node or node.get("__typename") != "Job":
        raise ClientError("NOT_FOUND", f"no job {job_id} that this token may see")
    return dict(node)


async def center_id(gateway: Gateway, name_or_id: str) -> str:
    centers = [edge["node"] for edge in (await gateway.execute(ops.CENTERS))["centers"]["edges"]]
    for center in centers:
        if name_or_id in (center["name"], center["id"]):
            return str(center["id"])
    known = ", ".join(center["name"] for center in centers) or "none"
    raise ClientError("NOT_FOUND", f"no center {name_or_id!r} (centers: {known})")


def resource_request(
    cpus: int | None, devices: int | None, accelerator: str | None, max_minutes: float | None, memory_gb: float | None
) -> dict[str, Any]:
    request: dict[str, Any] = {}
    for key, value in (("cpus", cpus), ("devices", devices), ("accelerator", accelerator), ("memoryGb", memory_gb)):
        if value is not None:
            request[key] = value
    if max_minutes is not None:
        request["maxDurationMinutes"] = max_minutes
    return request


def environment_of(pairs: list[str]) -> dict[str, str]:
    environment: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ClientError("BAD_USER_INPUT", f"--env takes KEY=VALUE, not {pair!r}")
        environment[key] = value
    return environment


async def mutate_job(gateway: Gateway, document: str, variables: dict[str, Any], root: str) -> dict[str, Any]:
    """A mutation whose payload holds the job it changed; its first userError is the failure."""
    payload = (await gateway.execute(document, variables))[root]
    raise_user_errors(payload)
    return dict(payload["job"])


def show_changed(job: dict[str, Any], json_out: bool, text: str) -> None:
    if json_out:
        render.print_json(job)
    else:
        print(text.format(**job))


CpusOption = Annotated[int | None, typer.Option(min=1, help="CPU cores for the job (submit: 1 when no resource is named).")]
DevicesOption = Annotated[int | None, typer.Option(min=1, help="How many devices of --accelerator.")]
AcceleratorOption = Annotated[str | None, typer.Option(help="A catalog model, e.g. cpu-core or nvidia-a100-80gb (default: cpu-core).")]
MemoryOption = Annotated[float | None, typer.Option(min=0.001, help="Memory for the job, in GB.")]


# ---------------------------------------------------------------------- jobs


@job_app.command(context_settings={"allow_interspersed_args": False})
def submit(
    argv: Annotated[
        list[str] | None,
        typer.Argument(help="The program and its arguments, after --; run as given, never through a shell.", show_default=False),
    ] = None,
    name: Annotated[str | None, typer.Option(help="The job's name (default: the program's file name).")] = None,
    center: Annotated[str | None, typer.Option(help="Run on this center (its name or id); default: placed by --policy.")] = None,
    cpus: CpusOption = None,
    devices: DevicesOption = None,
    accelerator: AcceleratorOption = None,
    max_minutes: Annotated[
        float | None, typer.Option(min=0.01, help=f"Wall-clock limit in minutes; the job is stopped past it (default {DEFAULT_MINUTES:g}).")
    ] = None,
    memory_gb: MemoryOption = None,
    policy: Annotated[
        Policy | None, typer.Option(help="How the network picks a center when --center is not given.", case_sensitive=False)
    ] = None,
    env: Annotated[
        list[str] | None, typer.Option("--env", "-e", help="An environment variable KEY=VALUE for the job; repeat for more.")
    ] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="The same key twice makes one job (safe to retry).")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="A job.toml whose keys mirror SubmitJobInput; flags override it.")
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Submit a job; prints its id (or the job as JSON with --json).

    aicn job submit --name train --cpus 2 --max-minutes 30 -- python train.py --epochs 3
    """

    async def work(gateway: Gateway) -> dict[str, Any]:
        job_input: dict[str, Any] = read_job_file(file) if file is not None else {"request": {}}
        if argv:
            job_input["command"] = list(argv)
        if not job_input.get("command"):
            raise ClientError(
                "BAD_USER_INPUT", "no command: put it after --, e.g. aicn job submit -- python train.py (or command = [...] in --file)"
            )
        job_input.setdefault("name", name or Path(job_input["command"][0]).name)
        if name:
            job_input["name"] = name
        job_input["request"].update(resource_request(cpus, devices, accelerator, max_minutes, memory_gb))
        job_input["request"].setdefault("maxDurationMinutes", DEFAULT_MINUTES)
        if not {"cpus", "devices", "standardUnits", "accelerator"} & set(job_input["request"]):
            job_input["request"]["cpus"] = 1
        if center:
            job_input["centerId"] = await center_id(gateway, center)
        if policy:
            job_input["policy"] = str(policy)
        if env:
            job_input["environment"] = {**(job_input.get("environment") or {}), **environment_of(env)}
        if idempotency_key:
            job_input["idempotencyKey"] = idempotency_key
        return await mutate_job(gateway, ops.SUBMIT, {"input": job_input}, "submitJob")

    show_changed(run(work), json_out, "{id}")


@job_app.command("list")
def list_jobs(
    state: Annotated[
        list[str] | None,
        typer.Option(help="Only jobs in this state (PENDING, QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, ...); repeat for more."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Only jobs whose name contains this.")] = None,
    first: Annotated[int, typer.Option(min=1, max=100, help="How many jobs, newest first.")] = 20,
    json_out: JsonOption = False,
) -> None:
    """Your jobs, newest first."""
    job_filter: dict[str, Any] = {}
    if state:
        job_filter["states"] = [value.upper() for value in state]
    if name:
        job_filter["nameContains"] = name

    async def work(gateway: Gateway) -> list[dict[str, Any]]:
        answer = (await gateway.execute(ops.JOBS, {"filter": job_filter or None, "first": first}))["jobs"]
        return [edge["node"] for edge in answer["edges"]]

    jobs = run(work)
    if json_out:
        render.print_json(jobs)
    else:
        render.jobs_table(jobs)


@job_app.command("show")
def show_job(job_id: Annotated[str, typer.Argument(help="The job's id (as submit printed it).")], json_out: JsonOption = False) -> None:
    """One job: state, center, request, progress, exit code."""
    job = run(lambda gateway: load_job(gateway, job_id))
    if json_out:
        render.print_json(job)
    else:
        render.job_detail(job)


def exit_status(job: dict[str, Any]) -> int:
    """A finished job's status as a command's: its exit code; 1 when it failed or was cancelled without one."""
    if job["state"] == "SUCCEEDED":
        return 0
    code = job.get("exitCode")
    return code if isinstance(code, int) and 0 < code < 256 else 1


@job_app.command("watch")
def watch_job(
    job_id: Annotated[str, typer.Argument(help="The job's id (as submit printed it).")],
    json_out: Annotated[bool, typer.Option("--json", help="Print each event as a JSON line instead of the progress bar.")] = False,
) -> None:
    """Follow a job live (a progress bar) until it ends; exits with the job's exit status."""

    async def work(gateway: Gateway) -> dict[str, Any]:
        job = await load_job(gateway, job_id)
        events = gateway.subscribe(ops.EVENTS, {"id": job["id"]})
        if json_out:
            async for data in events:
                print(json.dumps(data["jobEvents"]), flush=True)
        else:
            await watch.show(job["name"], events)
        return await load_job(gateway, job["id"])

    job = run(work)
    if not json_out:
        ending = f"job {job['id']} {job['state']}"
        if job.get("exitCode") is not None:
            ending += f" (exit code {job['exitCode']})"
        if job.get("failureReason"):
            ending += f": {job['failureReason']}"
        print(ending, file=sys.stderr if job["state"] != "SUCCEEDED" else sys.stdout)
    raise typer.Exit(exit_status(job))


@job_app.command("logs")
def job_logs(
    job_id: Annotated[str, typer.Argument(help="The job's id (as submit printed it).")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines as the job writes them, until it ends.")] = False,
    tail: Annotated[int, typer.Option(min=0, max=10_000, help="How many of the last lines to print first.")] = 100,
    json_out: Annotated[
        bool, typer.Option("--json", help="With --follow: each message as a JSON line (lines, truncated, dropped).")
    ] = False,
) -> None:
    """Print a job's output: its last lines, and with --follow every new line until the job ends."""

    async def work(gateway: Gateway) -> None:
        job = await load_job(gateway, job_id)
        if not follow:
            if tail:
                text = (await gateway.execute(ops.LOGS, {"id": job["id"], "tail": tail}))["node"]["logs"] or ""
                sys.stdout.write(text if not text or text.endswith("\n") else text + "\n")
            return
        async for data in gateway.subscribe(ops.FOLLOW_LOGS, {"id": job["id"], "tail": tail}):
            batch = data["jobLogs"]
            if json_out:
                print(json.dumps(batch), flush=True)
            else:
                for line in batch["lines"]:
                    print(line)
                sys.stdout.flush()

    run(work)


@job_app.command("cancel")
def cancel_job(job_id: Annotated[str, typer.Argument(help="The job's id (as submit printed it).")], json_out: JsonOption = False) -> None:
    """Cancel a job (a job that has ended stays as it is)."""

    async def work(gateway: Gateway) -> dict[str, Any]:
        job = await load_job(gateway, job_id)
        return await mutate_job(gateway, ops.CANCEL, {"id": job["id"]}, "cancelJob")

    show_changed(run(work), json_out, "job {id} {state}")


# ---------------------------------------------------------------------- the network


@app.command("centers")
def centers(json_out: JsonOption = False) -> None:
    """The network's compute centers: status, devices free of total, prices."""
    found = run(lambda gateway: gateway.execute(ops.CENTERS))
    nodes = [edge["node"] for edge in found["centers"]["edges"]]
    if json_out:
        render.print_json(nodes)
        return
    rows = []
    for center in nodes:
        units = center.get("computeUnits") or []
        rows.append(
            [
                center["name"],
                center["kind"],
                center["status"]["state"],
                center.get("region"),
                "\n".join(f"{unit['devicesAvailable']}/{unit['devicesTotal']} {unit['accelerator']['model']}" for unit in units) or None,
                "\n".join(render.money(unit["pricePerUnitHour"]) for unit in units) or None,
            ]
        )
    render.table(None, ["NAME", "KIND", "STATUS", "REGION", "FREE/TOTAL", "PRICE/UNIT-HOUR"], rows)


@app.command("offers")
def offers(
    cpus: CpusOption = None,
    devices: DevicesOption = None,
    accelerator: AcceleratorOption = None,
    max_minutes: Annotated[float, typer.Option(min=0.01, help="The job's wall-clock limit in minutes.")] = DEFAULT_MINUTES,
    memory_gb: MemoryOption = None,
    policy: Annotated[Policy, typer.Option(help="How the offers are ranked.", case_sensitive=False)] = Policy.CHEAPEST,
    json_out: JsonOption = False,
) -> None:
    """Every center's quote for a job of this size, best first."""
    request = resource_request(cpus, devices, accelerator, max_minutes, memory_gb)
    found = run(lambda gateway: gateway.execute(ops.OFFERS, {"request": request, "policy": str(policy)}))["offers"]
    if json_out:
        render.print_json(found)
        return
    rows = [
        [
            offer["center"]["name"],
            (offer.get("computeUnit") or {}).get("accelerator", {}).get("model"),
            "yes" if offer["feasible"] else "no",
            offer["devices"],
            render.money(offer.get("pricePerHour")),
            render.money(offer.get("maxCost")),
            offer.get("reason"),
        ]
        for offer in found
    ]
    render.table(None, ["CENTER", "ACCELERATOR", "FEASIBLE", "DEVICES", "PRICE/HOUR", "AT MOST", "REASON"], rows)


@bill_app.command("show")
def bill_show(
    month: Annotated[str | None, typer.Option(help="The month, YYYY-MM (default: the newest bill, this month's).")] = None,
    json_out: JsonOption = False,
) -> None:
    """A month's bill: its status, total and lines."""
    if month is not None and not _MONTH.fullmatch(month):
        print(ClientError("BAD_USER_INPUT", f"--month is written YYYY-MM, not {month!r}").line(), file=sys.stderr)
        raise typer.Exit(1)

    async def work(gateway: Gateway) -> dict[str, Any]:
        bills = [edge["node"] for edge in (await gateway.execute(ops.BILLS, {"first": 24}))["bills"]["edges"]]
        chosen = next((bill for bill in bills if month is None or bill["period"] == month), None)
        if chosen is None:
            raise ClientError("NOT_FOUND", f"no bill for {month}" if month else "no bill yet")
        return dict(chosen)

    bill = run(work)
    if json_out:
        render.print_json(bill)
        return
    lines = [edge["node"] for edge in bill["lines"]["edges"]]
    title = f"Bill {bill['period']} ({bill['status']}): total {render.money(bill['total'])}"
    render.table(
        title, ["KIND", "DESCRIPTION", "AMOUNT"], [[line["kind"], line["description"], render.money(line["amount"])] for line in lines]
    )
    if bill["lines"]["totalCount"] > len(lines):
        print(f"... and {bill['lines']['totalCount'] - len(lines)} more lines (--json shows the first 100 too)")


# ---------------------------------------------------------------------- entry


def run_user_command(argv: list[str]) -> int:
    """``aicn job ...`` and the other user commands; returns the exit status (2 for a misused command)."""
    try:
        # without standalone mode, typer answers an Exit with its code and a command's end with None
        status = typer.main.get_command(app).main(args=argv, prog_name="aicn", standalone_mode=False)
    except typer.Exit as done:
        return int(done.exit_code)
    except KeyboardInterrupt:
        print("aicn: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        message = getattr(error, "format_message", None)
        if message is None:  # not one of typer's usage errors (its vendored click's UsageError)
            raise
        context = getattr(error, "ctx", None)
        where = f" (see {context.command_path} --help)" if context is not None else ""
        print(f"aicn: error BAD_USAGE: {message()}{where}", file=sys.stderr)
        return 2
    return status if isinstance(status, int) else 0
