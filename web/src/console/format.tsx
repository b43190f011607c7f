// Small display helpers shared by the pages.
import type { Money } from "./types";

export function money(value: Money | null | undefined): string {
  if (!value) return "—";
  const amount = Number(value.amount);
  return `${amount.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 4 })} ${value.currency}`;
}

/** A quantity such as unit-hours: plain decimals, small ones still visible. */
export function quantity(value: string | number): string {
  return Number(value).toLocaleString(undefined, { maximumFractionDigits: 6 });
}

export function when(value: string | null | undefined): string {
  return value ? new Date(value).toLocaleString() : "—";
}

export function StateBadge({ state }: { state: string }) {
  return <span className={`badge state-${state.toLowerCase()}`}>{state}</span>;
}

export function ProgressBar({ fraction, label }: { fraction: number | null | undefined; label?: string }) {
  const percent = Math.round(Math.max(0, Math.min(1, fraction ?? 0)) * 100);
  return (
    <div className="progress" role="progressbar" aria-valuenow={percent} aria-valuemin={0} aria-valuemax={100} aria-label={label ?? "progress"}>
      <div className="progress-fill" style={{ width: `${percent}%` }} />
      <span className="progress-text">{percent}%</span>
    </div>
  );
}

export function ErrorLine({ error }: { error: string | null }) {
  return error ? <p className="error" role="alert">{error}</p> : null;
}
