// One inference service: its state, model, replicas and scale, live from serviceEvents(after: the last seq seen),
// like the job page's jobEvents (see events.ts); invoke, scale and stop.
import { useCallback, useEffect, useState } from "react";
import { gql } from "./api";
import { useEventsAfter } from "./events";
import { ErrorLine, money, StateHeader, when } from "./format";
import { SERVICE, SERVICE_EVENTS, STOP_SERVICE } from "./queries";
import { InvokeForm, ScaleForm } from "./ServiceForms";
import { SERVICE_FINAL_STATES, type Service, type ServiceEvent, type UserError } from "./types";

const COUNTS_REFRESH_MS = 2_000;

export function ServiceCard({ initial }: { initial: Service }) {
  const [service, setService] = useState<Service>(initial);
  const [error, setError] = useState<string | null>(null);
  const id = initial.id;

  const load = useCallback(async () => {
    try {
      const data = await gql<{ node: Service | null }>(SERVICE, { id });
      if (data.node) setService(data.node);
    } catch (failure) {
      setError((failure as Error).message);
    }
  }, [id]);

  const events = useEventsAfter<ServiceEvent>(SERVICE_EVENTS, "serviceEvents", id, (after) => ({ serviceId: id, after }), {
    applied: (event) => {
      // the event carries the new state at once; the rest of the card (replicas, counts) is read again
      if (event.state) setService((before) => ({ ...before, state: event.state ?? before.state }));
      void load();
    },
    error: (failure) => setError(`${failure.code}: ${failure.message}`),
    complete: () => void load(),
  });

  // requests are counted on the gateway's controller tick, with no event: a running service's card reads them again now and then
  const ended = SERVICE_FINAL_STATES.has(service.state);
  useEffect(() => {
    if (ended) return;
    const timer = window.setInterval(() => void load(), COUNTS_REFRESH_MS);
    return () => window.clearInterval(timer);
  }, [ended, load]);

  async function stop() {
    const data = await gql<{ stopService: { service: Service | null; userErrors: UserError[] } }>(STOP_SERVICE, { serviceId: id });
    const problem = data.stopService.userErrors[0];
    setError(problem ? `${problem.code}: ${problem.message}` : null);
    if (data.stopService.service) setService(data.stopService.service);
  }

  const { replicas } = service;
  return (
    <article className="card service" data-service-id={id} aria-label={`service ${service.name}`}>
      <StateHeader
        title={service.name}
        state={service.state}
        level="h3"
        action={!ended && service.state !== "STOPPING" ? { label: "Stop service", run: () => void stop() } : null}
      />
      <ErrorLine error={error} />
      {service.failureReason && <p className="error">{service.failureReason}</p>}
      <div className="grid">
        <dl>
          <dt>Model</dt>
          <dd>
            {service.model.name} {service.model.version}
          </dd>
          <dt>Center</dt>
          <dd>{service.center?.displayName ?? "—"}</dd>
          <dt>Replicas</dt>
          <dd className="replicas">
            {replicas.ready} ready / {replicas.desired} desired
          </dd>
          <dt>Scale</dt>
          <dd>
            min {replicas.min} · max {replicas.max} · target {service.targetRequestsPerReplica} requests per replica
          </dd>
          <dt>Requests</dt>
          <dd className="requests">{service.requestsTotal}</dd>
          <dt>Price</dt>
          <dd>{service.pricePerUnitHour ? `${money(service.pricePerUnitHour)} per unit-hour` : "—"}</dd>
          <dt>Endpoint</dt>
          <dd>
            <code>POST {service.endpoint}</code>
          </dd>
          <dt>Created · stopped</dt>
          <dd>
            {when(service.createdAt)} · {when(service.stoppedAt)}
          </dd>
        </dl>
        <div>
          <h4>Events</h4>
          <ol className="events">
            {events.map((event) => (
              <li key={event.seq} data-seq={event.seq}>
                <span className="muted">#{event.seq}</span> {event.kind} {event.state ?? ""}
                {event.replicasReady != null ? ` · ${event.replicasReady} ready` : ""} {event.message ?? ""}
              </li>
            ))}
          </ol>
        </div>
      </div>
      {!ended && (
        <div className="grid">
          <InvokeForm serviceId={id} onAnswered={() => void load()} />
          <ScaleForm service={service} onScaled={setService} />
        </div>
      )}
    </article>
  );
}
