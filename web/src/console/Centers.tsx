// Centers: status, capacity in standard units, and each compute unit's price.
import { useEffect, useState } from "react";
import { gql } from "./api";
import { ErrorLine, money } from "./format";
import { CENTERS } from "./queries";
import type { Edges, Money } from "./types";

interface Center {
  id: string;
  name: string;
  displayName: string;
  region: string | null;
  kind: string;
  status: { state: string; latencyMs: number | null; message: string | null };
  capacity: { standardUnitsTotal: number; standardUnitsAvailable: number } | null;
  computeUnits:
    | {
        id: string;
        partition: string | null;
        devicesTotal: number;
        devicesAvailable: number;
        standardUnitsTotal: number;
        accelerator: { model: string; vendor: string; standardUnits: number };
        pricePerUnitHour: Money;
      }[]
    | null;
}

export function Centers() {
  const [centers, setCenters] = useState<Center[]>([]);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    gql<{ centers: Edges<Center> }>(CENTERS)
      .then((data) => setCenters(data.centers.edges.map(({ node }) => node)))
      .catch((failure: Error) => setError(failure.message));
  }, []);
  return (
    <section>
      <header className="page-header">
        <h2>Centers</h2>
      </header>
      <ErrorLine error={error} />
      <div className="grid">
        {centers.map((center) => (
          <div className="card center" key={center.id}>
            <h3>
              {center.displayName} <span className={`badge center-${center.status.state.toLowerCase()}`}>{center.status.state}</span>
            </h3>
            <p className="muted">
              {center.kind} · {center.region ?? "no region"}
              {center.status.latencyMs != null ? ` · ${center.status.latencyMs.toFixed(0)} ms` : ""}
              {center.status.message ? ` · ${center.status.message}` : ""}
            </p>
            {center.capacity && (
              <p>
                <strong>{center.capacity.standardUnitsAvailable}</strong> of {center.capacity.standardUnitsTotal} standard units free
              </p>
            )}
            <table>
              <thead>
                <tr>
                  <th>Accelerator</th>
                  <th>Devices free</th>
                  <th>Units</th>
                  <th>Price / unit-hour</th>
                </tr>
              </thead>
              <tbody>
                {(center.computeUnits ?? []).map((unit) => (
                  <tr key={unit.id}>
                    <td>
                      {unit.accelerator.model}
                      {unit.partition ? ` (${unit.partition})` : ""}
                    </td>
                    <td>
                      {unit.devicesAvailable} / {unit.devicesTotal}
                    </td>
                    <td>{unit.standardUnitsTotal}</td>
                    <td>{money(unit.pricePerUnitHour)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ))}
      </div>
    </section>
  );
}
