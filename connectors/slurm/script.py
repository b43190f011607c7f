"""The batch script a SLURM job runs, and the progress it publishes as its comment.

Jobs report progress the same way on every center: they print ``AICN_PROGRESS {json}``
lines (see ``connectors.progress``). slurmrestd has no way to read a job's output, so
the batch script runs the command with its stdout and stderr going through a filter:

* ``tee`` copies every byte to the job's output file (Slurm's ``standard_output``);
* ``grep`` picks the marker lines, and a small bash loop numbers them and publishes the
  newest as the job's comment, ``#<ordinal>@<epoch seconds> AICN_PROGRESS {...}``, with
  ``scontrol update job=$SLURM_JOB_ID comment=...``.

The loop publishes at most once per ``interval`` seconds, so a job that prints progress
in a tight loop costs slurmctld one RPC a second, not thousands; reports in between
coalesce, the newest one always wins and is published before the job ends. Slurm keeps
at most 1024 bytes of comment, so a marker line longer than ``MAX_PUBLISHED_BYTES`` is
counted but not published.

The command runs as an argv (``exec`` in a subshell, every word quoted), so nothing in
it is interpreted by the shell. A program that cannot be found (exit 127 and no such program
on the job's ``PATH``) leaves ``AICN_FAILURE COMMAND_NOT_FOUND: ...`` as the job's comment,
so the job ends with the same coded reason as on a LOCAL center. The job ends when the command does: the filter gets a
few seconds to drain, then the script exits with the command's status and Slurm cleans up
whatever the command left behind.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from datetime import UTC, datetime

from connectors.base import ProgressReport
from connectors.progress import MARKER, parse_progress_line

#: Slurm refuses comments over 1024 bytes; the "#<ordinal>@<time> " prefix takes the rest
MAX_PUBLISHED_BYTES = 990
#: starts the comment of a job that could not start its command; the reason follows
FAILURE_MARKER = "AICN_FAILURE "
#: how long the script waits for the filter after the command ended
DRAIN_SECONDS = 10

_TEMPLATE = r"""#!/bin/bash
# aicn batch job: runs one command, copies its output, publishes its progress (see
# connectors/slurm/script.py in the aicn gateway).
aicn_tools_path="/usr/local/bin:/usr/bin:/bin:$PATH"

aicn_comment() {  # text
  local try
  for try in 1 2 3; do
    PATH=$aicn_tools_path @SCONTROL@ update "job=$SLURM_JOB_ID" "comment=$1" >/dev/null 2>&1 && return 0
    PATH=$aicn_tools_path sleep "$try"
  done
  return 1
}

aicn_publish() {  # ordinal, time, line
  aicn_comment "#$1@$2 $3"
}

aicn_report() {  # reads marker lines; publishes the newest at most once per interval
  local LC_ALL=C line= carry= latest= latest_at= ordinal=0 pending=0 now next=0 timeout status
  while :; do
    if ((pending)); then
      now=${EPOCHREALTIME//[.,]/}
      if ((now >= next)); then
        aicn_publish "$ordinal" "$latest_at" "$latest"
        pending=0 next=$((now + @INTERVAL_US@))
        continue
      fi
      printf -v timeout '%d.%06d' $(((next - now) / 1000000)) $(((next - now) % 1000000))
      IFS= read -r -t "$timeout" line; status=$?
    else
      IFS= read -r line; status=$?
    fi
    if ((status > 128)); then  # timed out, possibly in the middle of a line
      carry+=$line
      continue
    fi
    line=$carry$line carry=
    if [[ $line =~ ^[[:space:]]*@MARKER@ ]]; then
      ordinal=$((ordinal + 1))
      if ((${#line} <= @MAX_BYTES@)); then
        latest=$line latest_at=$EPOCHREALTIME pending=1
      fi
    fi
    ((status == 0)) || break
  done
  if ((pending)); then aicn_publish "$ordinal" "$latest_at" "$latest"; fi
}

aicn_filter() {  # every byte to the output file (stdout), marker lines to aicn_report
  exec 4> >(PATH=$aicn_tools_path grep -a --line-buffered '^[[:space:]]*@MARKER@' | aicn_report)
  local reporter=$!
  PATH=$aicn_tools_path tee -p /dev/fd/4  # a pipe: reopening it is safe, unlike a file
  exec 4>&-
  wait "$reporter"
}

exec 3> >(aicn_filter)
aicn_filter_pid=$!
( exec -- @COMMAND@ ) >&3 2>&1 3>&-
aicn_status=$?
exec 3>&-
if ((aicn_status == 127)) && ! type -P -- @PROGRAM@ >/dev/null; then
  aicn_comment @NOT_FOUND@  # the command never ran: it publishes no progress, nothing overwrites this
fi
# the filter ends once every writer of its pipe is gone; something the command left
# running in the background may hold it open, so wait only a little
for ((aicn_i = 0; aicn_i < @DRAIN_TICKS@; aicn_i++)); do
  kill -0 "$aicn_filter_pid" 2>/dev/null || break
  PATH=$aicn_tools_path sleep 0.1
done
exit "$aicn_status"
"""


def batch_script(command: Sequence[str], *, interval: float = 1.0, scontrol: str = "scontrol") -> str:
    """The bash script that runs ``command`` (an argv) and publishes its progress."""
    if not command:
        raise ValueError("the command is empty")
    if any("\0" in word for word in command):
        raise ValueError("the command contains a NUL character")
    replacements = {
        "@COMMAND@": " ".join(shlex.quote(word) for word in command),
        "@PROGRAM@": shlex.quote(command[0]),
        "@NOT_FOUND@": shlex.quote(_not_found_comment(command[0])),
        "@SCONTROL@": shlex.quote(scontrol),
        "@INTERVAL_US@": str(max(0, int(interval * 1_000_000))),
        "@MAX_BYTES@": str(MAX_PUBLISHED_BYTES),
        "@MARKER@": MARKER,
        "@DRAIN_TICKS@": str(DRAIN_SECONDS * 10),
    }
    return re.sub("|".join(map(re.escape, replacements)), lambda match: replacements[match.group(0)], _TEMPLATE)


def _not_found_comment(program: str) -> str:
    """The comment a job whose program does not exist ends with: the reason LOCAL gives, marked."""
    shown = program if len(program) <= MAX_PUBLISHED_BYTES // 2 else program[: MAX_PUBLISHED_BYTES // 2] + "..."
    return f"{FAILURE_MARKER}COMMAND_NOT_FOUND: cannot start {shown!r}: No such file or directory"


def failure_from_comment(comment: str) -> str | None:
    """The coded reason the batch script left in the job's comment, when it could not start the command."""
    return comment.removeprefix(FAILURE_MARKER) if comment.startswith(FAILURE_MARKER) else None


_PUBLISHED = re.compile(r"^#(\d+)(?:@(\d+)(?:[.,](\d+))?)?\s(.*)$", re.DOTALL)


def progress_from_comment(comment: str, progress_after: int) -> tuple[ProgressReport, ...]:
    """The report a job's comment carries, if it is newer than ``progress_after``."""
    match = _PUBLISHED.match(comment)
    if match is None:
        return ()
    ordinal = int(match.group(1))
    if ordinal <= progress_after:
        return ()
    if match.group(2):
        fraction = float(f"0.{match.group(3)}") if match.group(3) else 0.0
        at = datetime.fromtimestamp(int(match.group(2)) + fraction, UTC)
    else:
        at = datetime.now(UTC)
    report = parse_progress_line(match.group(4), ordinal, at)
    return (report,) if report is not None else ()
