// Inference services: the caller's services, each a card that follows its own serviceEvents.
// The list is loaded again after a reconnection (a service may have been deployed meanwhile);
// each card resumes its events with `after` the last seq it applied.
import { useEffect, useState } from "react";
import { gql, onReconnect } from "./api";
import { ErrorLine } from "./format";
import { SERVICES } from "./queries";
import { ServiceCard } from "./ServiceCard";
import { SERVICE_STATES, type Edges, type Service } from "./types";

export function Services() {
  const [state, setState] = useState<string>("");
  const [services, setServices] = useState<Service[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const filter = state ? { states: [state] } : null;
    let current = true;
    const load = () =>
      gql<{ services: Edges<Service> }>(SERVICES, { filter })
        .then((data) => current && setServices(data.services.edges.map(({ node }) => node)))
        .catch((failure: Error) => current && setError(failure.message));
    void load();
    const stopReconnect = onReconnect(() => void load());
    return () => {
      current = false;
      stopReconnect();
    };
  }, [state]);

  return (
    <section>
      <header className="page-header">
        <h2>Inference services</h2>
        <label className="inline">
          State
          <select aria-label="filter services by state" value={state} onChange={(event) => setState(event.target.value)}>
            <option value="">all</option>
            {SERVICE_STATES.map((name) => (
              <option key={name}>{name}</option>
            ))}
          </select>
        </label>
      </header>
      <ErrorLine error={error} />
      {services === null && !error && <p>Loading…</p>}
      {services?.length === 0 && (
        <p className="card empty">
          No services{state ? ` in state ${state}` : ""} yet. Deploy a model with <code>deployModel</code>.
        </p>
      )}
      {services?.map((service) => <ServiceCard key={service.id} initial={service} />)}
    </section>
  );
}
