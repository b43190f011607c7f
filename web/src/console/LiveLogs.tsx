// A job's output as it is written: the jobLogs subscription (the tail, then each new line).
// After a reconnection the subscription starts again with a tail: the part of it already shown is skipped.
// A gateway without jobLogs gets its Job.logs tail polled instead.
import { useEffect, useRef, useState } from "react";
import { connectionEpoch, gql, subscribe } from "./api";
import { JOB_LOG_TAIL, JOB_LOGS } from "./queries";
import { FINAL_STATES } from "./types";

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
  const [mode, setMode] = useState<"live" | "polled" | "ended">("live");
  const box = useRef<HTMLPreElement>(null);

  useEffect(() => {
    setLines([]);
    let epoch = connectionEpoch;
    let poller: number | undefined;
    const append = (incoming: string[], merge: boolean) =>
      setLines((before) => [...before, ...(merge ? newLines(before, incoming) : incoming)].slice(-KEEP));
    const poll = async () => {
      const data = await gql<{ node: { state: string; logs: string | null } | null }>(JOB_LOG_TAIL, { id: jobId, tailLines: KEEP });
      const text = data.node?.logs ?? "";
      const polled = text ? text.replace(/\n$/, "").split("\n") : [];
      setLines((before) => [...before, ...newLines(before, polled)].slice(-KEEP));
      if (data.node && FINAL_STATES.has(data.node.state)) {
        window.clearInterval(poller);
        setMode("ended");
      }
    };
    const stop = subscribe<{ jobLogs: { lines: string[]; truncated: boolean } }>(JOB_LOGS, () => ({ jobId, tailLines: TAIL }), {
      next: ({ jobLogs }) => {
        const resumed = epoch !== connectionEpoch;
        epoch = connectionEpoch;
        if (jobLogs.truncated) setTruncated(true);
        append(jobLogs.lines, resumed);
      },
      error: (failure) => {
        if (failure.code !== "GRAPHQL_VALIDATION_FAILED") return;
        setMode("polled");
        void poll();
        poller = window.setInterval(() => void poll(), 1_000);
      },
      complete: () => setMode("ended"),
    });
    return () => {
      stop();
      window.clearInterval(poller);
    };
  }, [jobId]);

  useEffect(() => {
    box.current?.scrollTo({ top: box.current.scrollHeight });
  }, [lines]);

  return (
    <div className="logs">
      <p className="muted">
        {mode === "live" ? "● following" : mode === "polled" ? "● following (polled)" : "the job has ended"}
        {truncated ? " · some lines were dropped (too many per second)" : ""}
      </p>
      <pre ref={box} aria-label="job logs">
        {lines.join("\n")}
      </pre>
    </div>
  );
}
