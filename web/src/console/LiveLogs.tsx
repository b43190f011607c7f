// A job's output as it is written: the jobLogs subscription (the tail, then each new line).
// After a reconnection the subscription starts again with a tail: the part of it already shown is skipped.
import { useEffect, useRef, useState } from "react";
import { connectionEpoch, subscribe } from "./api";
import { JOB_LOGS } from "./queries";

const TAIL = 200;
const KEEP = 2_000;

/** The lines of ``incoming`` that ``shown`` does not already end with (the longest overlap). */
export function newLines(shown: string[], incoming: string[]): string[] {
  for (let overlap = Math.min(shown.length, incoming.length); overlap > 0; overlap -= 1) {
    let same = true;
    for (let index = 0; index < overlap && same; index += 1) same = shown[shown.length - overlap + index] === incoming[index];
    if (same) return incoming.slice(overlap);
  }
  return incoming;
}

export function LiveLogs({ jobId }: { jobId: string }) {
  const [lines, setLines] = useState<string[]>([]);
  const [truncated, setTruncated] = useState(false);
  const [mode, setMode] = useState<"live" | "ended">("live");
  const [error, setError] = useState<string | null>(null);
  const box = useRef<HTMLPreElement>(null);

  useEffect(() => {
    setLines([]);
    let epoch = connectionEpoch;
    const append = (incoming: string[], merge: boolean) =>
      setLines((before) => [...before, ...(merge ? newLines(before, incoming) : incoming)].slice(-KEEP));
    const stop = subscribe<{ jobLogs: { lines: string[]; truncated: boolean } }>(JOB_LOGS, () => ({ jobId, tailLines: TAIL }), {
      next: ({ jobLogs }) => {
        const resumed = epoch !== connectionEpoch;
        epoch = connectionEpoch;
        if (jobLogs.truncated) setTruncated(true);
        append(jobLogs.lines, resumed);
      },
      error: (failure) => setError(`${failure.code}: ${failure.message}`),
      complete: () => setMode("ended"),
    });
    return stop;
  }, [jobId]);

  useEffect(() => {
    box.current?.scrollTo({ top: box.current.scrollHeight });
  }, [lines]);

  return (
    <div className="logs">
      <p className="muted">
        {error ?? (mode === "live" ? "● following" : "the job has ended")}
        {truncated ? " · some lines were dropped (too many per second)" : ""}
      </p>
      <pre ref={box} aria-label="job logs">
        {lines.join("\n")}
      </pre>
    </div>
  );
}
