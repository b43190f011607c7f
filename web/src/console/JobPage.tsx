// One job: state, live progress and metrics, placement, live logs, cancel.
// Its events come from jobEvents(after: the last seq seen), see events.ts.
import { useCallback, useEffect, useState } from "react";
import { gql } from "./api";
import { useEventsAfter } from "./events";
import { ErrorLine, money, ProgressBar, quantity, StateHeader, when } from "./format";
import { LiveLogs } from "./LiveLogs";
import { CANCEL_JOB, JOB, JOB_EVENTS } from "./queries";
import { FINAL_STATES, type Job, type JobEvent, type Progress, type UserError } from "./types";

/** The command as typed: the script of `sh -c SCRIPT` (what the submit form sends), else the argv joined. */
function shellLine(command: string[]): string {
  return command.length === 3 && command[0] === "sh" && command[1] === "-c" ? command[2] : command.join(" ");
}

export function JobPage({ id }: { id: string }) {
  const [job, setJob] = useState<Job | null>(null);
  const [progress, setProgress] = useState<Progress | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      const data = await gql<{ node: Job | null }>(JOB, { id });
      if (!data.node) throw new Error("no such job");
      setJob(data.node);
      const latest = data.node.progress;
      if (latest) setProgress((before) => (before?.at && latest.at && before.at > latest.at ? before : latest));
    } catch (failure) {
      setError((failure as Error).message);
    }
  }, [id]);

  useEffect(() => {
    void load();
  }, [load]);

  const events = useEventsAfter<JobEvent>(JOB_EVENTS, "jobEvents", id, (after) => ({ jobId: id, after }), {
    applied: (event) => {
      if (event.progress) setProgress(event.progress);
      if (event.kind !== "PROGRESS" && event.kind !== "LOG") void load();
    },
    error: (failure) => setError(failure.message),
    complete: () => void load(),
  });

  async function cancel() {
    const data = await gql<{ cancelJob: { job: { state: string } | null; userErrors: UserError[] } }>(CANCEL_JOB, { jobId: id });
    const problem = data.cancelJob.userErrors[0];
    setError(problem ? `${problem.code}: ${problem.message}` : null);
    void load();
  }

  if (!job) return <section>{error ? <ErrorLine error={error} /> : <p>Loading…</p>}</section>;
  const finished = FINAL_STATES.has(job.state);
  const fraction = progress?.fraction;
  const metrics = Object.entries(progress?.metrics ?? {});
  return (
    <section className="job">
      <StateHeader
        title={job.name}
        state={job.state}
        level="h2"
        action={!finished && job.state !== "CANCELLING" ? { label: "Cancel job", run: () => void cancel() } : null}
      />
      <ErrorLine error={error} />
      <div className="grid">
        <div className="card">
          <h3>Progress</h3>
          <ProgressBar fraction={fraction} label="job progress" />
          <p className="muted">
            {progress?.step != null && progress?.totalSteps != null ? `step ${progress.step} of ${progress.totalSteps}` : ""}
            {progress?.message ? ` · ${progress.message}` : ""}
          </p>
          {metrics.length > 0 && (
            <table className="metrics">
              <tbody>
                {metrics.map(([name, value]) => (
                  <tr key={name}>
                    <th>{name}</th>
                    <td>{typeof value === "number" ? value.toPrecision(4) : JSON.stringify(value)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
        <div className="card">
          <h3>Job</h3>
          <dl>
            <dt>Command</dt>
            <dd>
              <pre className="command">{shellLine(job.command)}</pre>
            </dd>
            <dt>Center</dt>
            <dd>{job.center?.displayName ?? "—"}</dd>
            <dt>Resources</dt>
            <dd>
              {Object.entries(job.request)
                .filter(([, value]) => value != null)
                .map(([key, value]) => `${key} ${value}`)
                .join(", ")}
            </dd>
            <dt>Submitted · started · finished</dt>
            <dd>
              {when(job.submittedAt)} · {when(job.startedAt)} · {when(job.finishedAt)}
            </dd>
            {job.exitCode != null && (
              <>
                <dt>Exit code</dt>
                <dd>{job.exitCode}</dd>
              </>
            )}
            {job.failureReason && (
              <>
                <dt>Why it failed</dt>
                <dd>{job.failureReason}</dd>
              </>
            )}
            {job.usage && (
              <>
                <dt>Usage</dt>
                <dd>
                  {quantity(job.usage.standardUnitHours)} unit-hours · {money(job.usage.amount)}
                </dd>
              </>
            )}
          </dl>
        </div>
        <div className="card wide">
          <h3>Placement{job.placement?.policy ? ` (${job.placement.policy})` : ""}</h3>
          {job.placement?.waiting && <p className="muted">Waiting: {job.placement.waiting}</p>}
          <table className="candidates">
            <thead>
              <tr>
                <th>Center</th>
                <th>Score</th>
                <th>Chosen</th>
                <th>Reason</th>
              </tr>
            </thead>
            <tbody>
              {(job.placement?.candidates ?? []).map((candidate, index) => (
                <tr key={index} className={candidate.chosen ? "chosen" : ""}>
                  <td>{candidate.center?.displayName ?? "—"}</td>
                  <td>{candidate.score ?? "—"}</td>
                  <td>{candidate.chosen ? "✔ chosen" : ""}</td>
                  <td>{candidate.reason ?? ""}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
        <div className="card wide">
          <h3>Logs</h3>
          <LiveLogs jobId={id} />
        </div>
        <div className="card wide">
          <h3>Events</h3>
          <ol className="events">
            {events.map((event) => (
              <li key={event.seq} data-seq={event.seq}>
                <span className="muted">#{event.seq}</span> {event.kind} {event.state ?? ""}{" "}
                {event.progress?.fraction != null ? `${Math.round(event.progress.fraction * 100)}%` : ""} {event.message ?? ""}
              </li>
            ))}
          </ol>
        </div>
      </div>
    </section>
  );
}
