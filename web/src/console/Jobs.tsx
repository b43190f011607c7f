// The job board: the caller's jobs, kept current by the jobUpdates subscription; refetched after a reconnection
// (jobUpdates has no `after`: each update is the whole job, so applying it twice shows it once).
import { useEffect, useState } from "react";
import { gql, onReconnect, subscribe } from "./api";
import { ErrorLine, ProgressBar, StateBadge, when } from "./format";
import { JOB_UPDATES, JOBS } from "./queries";
import { JOB_STATES, type Edges, type JobRow } from "./types";

export function Jobs() {
  const [state, setState] = useState<string>("");
  const [jobs, setJobs] = useState<Map<string, JobRow>>(new Map());
  const [error, setError] = useState<string | null>(null);
  const [live, setLive] = useState(false);

  useEffect(() => {
    const filter = state ? { states: [state] } : null;
    let current = true;
    const load = () =>
      gql<{ jobs: Edges<JobRow> }>(JOBS, { filter })
        .then((data) => current && setJobs(new Map(data.jobs.edges.map(({ node }) => [node.id, node]))))
        .catch((failure: Error) => current && setError(failure.message));
    void load();
    const stopReconnect = onReconnect(() => void load());
    const stop = subscribe<{ jobUpdates: JobRow }>(JOB_UPDATES, () => ({ filter }), {
      next: ({ jobUpdates }) => {
        setLive(true);
        setJobs((before) => new Map(before).set(jobUpdates.id, jobUpdates));
      },
      error: (failure) => setError(failure.message),
    });
    setLive(true);
    return () => {
      current = false;
      stop();
      stopReconnect();
    };
  }, [state]);

  const rows = [...jobs.values()]
    .filter((job) => !state || job.state === state)
    .sort((a, b) => b.submittedAt.localeCompare(a.submittedAt));
  return (
    <section>
      <header className="page-header">
        <h2>Jobs</h2>
        <label className="inline">
          State
          <select aria-label="filter by state" value={state} onChange={(event) => setState(event.target.value)}>
            <option value="">all</option>
            {JOB_STATES.map((name) => (
              <option key={name}>{name}</option>
            ))}
          </select>
        </label>
        <span className={live ? "live on" : "live"}>{live ? "● live" : "○"}</span>
        <a className="button" href="#/submit">
          Submit a job
        </a>
      </header>
      <ErrorLine error={error} />
      <table className="jobs">
        <thead>
          <tr>
            <th>Name</th>
            <th>State</th>
            <th>Progress</th>
            <th>Center</th>
            <th>Submitted</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((job) => (
            <tr key={job.id} data-job-id={job.id}>
              <td>
                <a href={`#/jobs/${encodeURIComponent(job.id)}`}>{job.name}</a>
              </td>
              <td>
                <StateBadge state={job.state} />
              </td>
              <td>
                <ProgressBar fraction={job.progress?.fraction} label={`${job.name} progress`} />
              </td>
              <td>{job.center?.name ?? "—"}</td>
              <td>{when(job.submittedAt)}</td>
            </tr>
          ))}
          {rows.length === 0 && (
            <tr>
              <td colSpan={5} className="empty">
                No jobs{state ? ` in state ${state}` : ""} yet.
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </section>
  );
}
