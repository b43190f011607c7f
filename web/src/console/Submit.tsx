// The submit form: command, resources, policy, datasets; the offers are shown before anything is submitted.
import { useEffect, useState, type FormEvent } from "react";
import { gql } from "./api";
import { ErrorLine, money, when } from "./format";
import { DATASETS, OFFERS, SUBMIT_JOB } from "./queries";
import type { Edges, Money, UserError } from "./types";

interface Offer {
  feasible: boolean;
  reason: string | null;
  devices: number;
  standardUnits: number;
  score: number | null;
  estimatedStart: string | null;
  pricePerHour: Money | null;
  maxCost: Money | null;
  center: { id: string; name: string; displayName: string };
  computeUnit: { accelerator: { model: string } } | null;
}

const POLICIES = ["CHEAPEST", "EARLIEST_START", "DATA_LOCAL"];

function number(value: string): number | null {
  return value.trim() === "" ? null : Number(value);
}

export function Submit() {
  const [name, setName] = useState("my-job");
  const [command, setCommand] = useState("");
  const [cpus, setCpus] = useState("1");
  const [devices, setDevices] = useState("");
  const [accelerator, setAccelerator] = useState("");
  const [memoryGb, setMemoryGb] = useState("");
  const [minutes, setMinutes] = useState("10");
  const [policy, setPolicy] = useState("CHEAPEST");
  const [datasets, setDatasets] = useState<{ id: string; name: string; version: string }[]>([]);
  const [chosenDatasets, setChosenDatasets] = useState<string[]>([]);
  const [offers, setOffers] = useState<Offer[] | null>(null);
  const [centerId, setCenterId] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    gql<{ datasets: Edges<{ id: string; name: string; version: string }> }>(DATASETS)
      .then((data) => setDatasets(data.datasets.edges.map(({ node }) => node)))
      .catch((failure: Error) => setError(failure.message));
  }, []);

  const request = () => ({
    maxDurationMinutes: Number(minutes),
    cpus: number(cpus),
    devices: number(devices),
    accelerator: accelerator.trim() || null,
    memoryGb: number(memoryGb),
  });
  // new inputs, new offers: the ones shown always match what would be submitted
  useEffect(() => setOffers(null), [cpus, devices, accelerator, memoryGb, minutes, policy]);

  async function showOffers(event: FormEvent) {
    event.preventDefault();
    setError(null);
    try {
      const data = await gql<{ offers: Offer[] }>(OFFERS, { request: request(), policy });
      setOffers(data.offers);
      setCenterId(null);
    } catch (failure) {
      setError((failure as Error).message);
    }
  }

  async function submit() {
    setError(null);
    const input = {
      name,
      command: ["sh", "-c", command],
      request: request(),
      policy,
      centerId,
      inputDatasetIds: chosenDatasets.length ? chosenDatasets : null,
    };
    try {
      const data = await gql<{ submitJob: { job: { id: string } | null; userErrors: UserError[] } }>(SUBMIT_JOB, { input });
      const problem = data.submitJob.userErrors[0];
      if (problem) setError(`${problem.code}: ${problem.message}`);
      else if (data.submitJob.job) window.location.hash = `#/jobs/${encodeURIComponent(data.submitJob.job.id)}`;
    } catch (failure) {
      setError((failure as Error).message);
    }
  }

  const feasible = offers?.some((offer) => offer.feasible) ?? false;
  return (
    <section>
      <header className="page-header">
        <h2>Submit a job</h2>
      </header>
      <form className="card form" onSubmit={showOffers}>
        <label>
          Name
          <input name="name" value={name} onChange={(event) => setName(event.target.value)} required />
        </label>
        <label className="wide">
          <span>
            Command (run by <code>sh -c</code>)
          </span>
          <textarea name="command" value={command} onChange={(event) => setCommand(event.target.value)} rows={3} required />
        </label>
        <label>
          CPUs
          <input name="cpus" type="number" min="1" value={cpus} onChange={(event) => setCpus(event.target.value)} />
        </label>
        <label>
          Devices
          <input name="devices" type="number" min="1" value={devices} onChange={(event) => setDevices(event.target.value)} />
        </label>
        <label>
          Accelerator
          <input name="accelerator" placeholder="any (e.g. A100-80G)" value={accelerator} onChange={(event) => setAccelerator(event.target.value)} />
        </label>
        <label>
          Memory (GB)
          <input name="memoryGb" type="number" min="0" step="any" value={memoryGb} onChange={(event) => setMemoryGb(event.target.value)} />
        </label>
        <label>
          Time limit (minutes)
          <input name="minutes" type="number" min="0.1" step="any" value={minutes} onChange={(event) => setMinutes(event.target.value)} required />
        </label>
        <label>
          Placement policy
          <select name="policy" value={policy} onChange={(event) => setPolicy(event.target.value)}>
            {POLICIES.map((name) => (
              <option key={name}>{name}</option>
            ))}
          </select>
        </label>
        <label className="wide">
          Input datasets
          <select
            name="datasets"
            multiple
            value={chosenDatasets}
            onChange={(event) => setChosenDatasets([...event.target.selectedOptions].map((option) => option.value))}
          >
            {datasets.map((dataset) => (
              <option key={dataset.id} value={dataset.id}>
                {dataset.name} {dataset.version}
              </option>
            ))}
          </select>
        </label>
        <div className="wide actions">
          <button type="submit">Show offers</button>
          <button type="button" disabled={!feasible} onClick={() => void submit()}>
            Submit job{centerId ? " to the chosen center" : ""}
          </button>
        </div>
      </form>
      <ErrorLine error={error} />
      {offers && (
        <div className="card">
          <h3>Offers ({policy}, best first) — pick one to pin the center, or let the policy place it</h3>
          <table className="offers">
            <thead>
              <tr>
                <th></th>
                <th>Center</th>
                <th>Accelerator</th>
                <th>Units</th>
                <th>Price / hour</th>
                <th>At most</th>
                <th>Starts</th>
                <th>Why not</th>
              </tr>
            </thead>
            <tbody>
              {offers.map((offer) => (
                <tr key={offer.center.id} className={offer.feasible ? "" : "infeasible"}>
                  <td>
                    <input
                      type="radio"
                      name="center"
                      aria-label={`place on ${offer.center.name}`}
                      disabled={!offer.feasible}
                      checked={centerId === offer.center.id}
                      onChange={() => setCenterId(offer.center.id)}
                    />
                  </td>
                  <td>{offer.center.displayName}</td>
                  <td>{offer.computeUnit?.accelerator.model ?? "—"}</td>
                  <td>{offer.standardUnits}</td>
                  <td>{money(offer.pricePerHour)}</td>
                  <td>{money(offer.maxCost)}</td>
                  <td>{when(offer.estimatedStart)}</td>
                  <td>{offer.reason ?? ""}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
