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

/** A page's or card's title with its state badge, and the one action that ends it (Cancel job, Stop service) while it may. */
export function StateHeader({
  title,
  state,
  level,
  action,
}: {
  title: string;
  state: string;
  level: "h2" | "h3";
  action: { label: string; run: () => void } | null;
}) {
  const Heading = level;
  return (
    <header className="page-header">
      <Heading>
        {title} <StateBadge state={state} />
      </Heading>
      {action && (
        <button type="button" className="danger" onClick={action.run}>
          {action.label}
        </button>
      )}
    </header>
  );
}
