// This month's usage by day (unit-hours and cost, from the month's bill lines) and the bills, with their FOCUS CSV.
import { BarController, BarElement, CategoryScale, Chart, Legend, LinearScale, LineController, LineElement, PointElement, Tooltip } from "chart.js";
import { useEffect, useRef, useState } from "react";
import { download, gql } from "./api";
import { ErrorLine, money, quantity } from "./format";
import { BILL_LINES, BILLS } from "./queries";
import type { Edges, Money } from "./types";

Chart.register(BarController, BarElement, CategoryScale, LinearScale, LineController, LineElement, PointElement, Legend, Tooltip);

interface Bill {
  id: string;
  period: string;
  status: string;
  periodStart: string;
  periodEnd: string;
  total: Money;
  csvUrl: string;
  account: { name: string } | null;
}

interface Line {
  kind: string;
  createdAt: string;
  amount: Money;
  usage: { endedAt: string; standardUnitHours: string; amount: { amount: string } } | null;
}

export interface Day {
  day: string;
  unitHours: number;
  cost: number;
}

/** Each day of the month (UTC), with the usage that ended on it. */
export function byDay(period: string, lines: Line[]): Day[] {
  const [year, month] = period.split("-").map(Number);
  const days = new Date(Date.UTC(year, month, 0)).getUTCDate();
  const totals: Day[] = Array.from({ length: days }, (_, index) => ({ day: String(index + 1), unitHours: 0, cost: 0 }));
  for (const line of lines) {
    if (!line.usage) continue;
    const ended = new Date(line.usage.endedAt);
    const entry = totals[ended.getUTCDate() - 1];
    entry.unitHours += Number(line.usage.standardUnitHours);
    entry.cost += Number(line.amount.amount);
  }
  return totals;
}

async function allLines(billId: string): Promise<Line[]> {
  const lines: Line[] = [];
  let after: string | null = null;
  for (;;) {
    type Page = { node: { lines: Edges<Line> & { pageInfo: { hasNextPage: boolean; endCursor: string | null } } } | null };
    const data: Page = await gql<Page>(BILL_LINES, { id: billId, after });
    if (!data.node) return lines;
    lines.push(...data.node.lines.edges.map(({ node }) => node));
    if (!data.node.lines.pageInfo.hasNextPage) return lines;
    after = data.node.lines.pageInfo.endCursor;
  }
}

/** Axis labels as plain decimals (never exponent notation, as the API writes amounts). */
function tick(value: string | number): string {
  return quantity(value);
}

function UsageChart({ days, currency }: { days: Day[]; currency: string }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    if (!canvas.current) return;
    const chart = new Chart(canvas.current, {
      data: {
        labels: days.map((day) => day.day),
        datasets: [
          { type: "bar", label: `cost (${currency})`, data: days.map((day) => day.cost), backgroundColor: "#6d5dfc", yAxisID: "cost" },
          { type: "line", label: "standard unit-hours", data: days.map((day) => day.unitHours), borderColor: "#e8590c", backgroundColor: "#e8590c", yAxisID: "hours" },
        ],
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        scales: {
          cost: { type: "linear", position: "left", beginAtZero: true, title: { display: true, text: currency }, ticks: { callback: tick } },
          hours: {
            type: "linear",
            position: "right",
            beginAtZero: true,
            grid: { drawOnChartArea: false },
            title: { display: true, text: "unit-hours" },
            ticks: { callback: tick },
          },
          x: { title: { display: true, text: "day of the month" } },
        },
      },
    });
    canvas.current.dataset.rendered = "true";
    return () => chart.destroy();
  }, [days, currency]);
  return (
    <div className="chart">
      <canvas ref={canvas} aria-label="usage by day" role="img" />
    </div>
  );
}

export function Usage() {
  const [bills, setBills] = useState<Bill[]>([]);
  const [days, setDays] = useState<Day[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const period = new Date().toISOString().slice(0, 7);

  useEffect(() => {
    (async () => {
      const data = await gql<{ bills: Edges<Bill> }>(BILLS);
      const list = data.bills.edges.map(({ node }) => node);
      setBills(list);
      const thisMonth = list.filter((bill) => bill.period === period);
      const lines = (await Promise.all(thisMonth.map((bill) => allLines(bill.id)))).flat();
      setDays(byDay(period, lines));
    })().catch((failure: Error) => setError(failure.message));
  }, [period]);

  const currency = bills.find((bill) => bill.period === period)?.total.currency ?? bills[0]?.total.currency ?? "";
  const total = days?.reduce((sum, day) => ({ hours: sum.hours + day.unitHours, cost: sum.cost + day.cost }), { hours: 0, cost: 0 });
  return (
    <section>
      <header className="page-header">
        <h2>Usage and bills</h2>
      </header>
      <ErrorLine error={error} />
      <div className="card">
        <h3>
          This month ({period}){total ? `: ${quantity(total.hours)} unit-hours, ${total.cost.toFixed(2)} ${currency}` : ""}
        </h3>
        {days ? <UsageChart days={days} currency={currency} /> : <p>Loading…</p>}
      </div>
      <div className="card">
        <h3>Bills</h3>
        <table className="bills">
          <thead>
            <tr>
              <th>Period</th>
              <th>Account</th>
              <th>Status</th>
              <th>Total</th>
              <th>FinOps FOCUS</th>
            </tr>
          </thead>
          <tbody>
            {bills.map((bill) => (
              <tr key={bill.id}>
                <td>{bill.period}</td>
                <td>{bill.account?.name ?? ""}</td>
                <td>{bill.status}</td>
                <td>{money(bill.total)}</td>
                <td>
                  <button type="button" className="link" onClick={() => void download(bill.csvUrl, `aicn-bill-${bill.period}.csv`).catch((failure: Error) => setError(failure.message))}>
                    Download CSV
                  </button>
                </td>
              </tr>
            ))}
            {bills.length === 0 && (
              <tr>
                <td colSpan={5} className="empty">
                  No bills yet: a bill opens with the first finished job of a month.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
    </section>
  );
}
