// A service's two forms: send it one JSON input (invokeService), and change its replica range and target (scaleService).
import { useState, type FormEvent } from "react";
import { gql } from "./api";
import { ErrorLine } from "./format";
import { INVOKE_SERVICE, SCALE_SERVICE } from "./queries";
import type { Service, UserError } from "./types";

function coded(errors: UserError[]): string | null {
  const first = errors[0];
  return first ? `${first.code}: ${first.message}` : null;
}

export function InvokeForm({ serviceId, onAnswered }: { serviceId: string; onAnswered: () => void }) {
  const [text, setText] = useState('{"inputs": []}');
  const [answer, setAnswer] = useState<{ output: unknown; latencyMs: number | null } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function invoke(event: FormEvent) {
    event.preventDefault();
    setAnswer(null);
    let input: unknown;
    try {
      input = JSON.parse(text);
    } catch (failure) {
      setError(`INVALID_JSON: ${(failure as Error).message}`);
      return;
    }
    setBusy(true);
    try {
      const data = await gql<{ invokeService: { output: unknown; latencyMs: number | null; userErrors: UserError[] } }>(INVOKE_SERVICE, {
        serviceId,
        input,
      });
      const result = data.invokeService;
      setError(coded(result.userErrors));
      if (result.userErrors.length === 0) setAnswer({ output: result.output, latencyMs: result.latencyMs });
      onAnswered();
    } catch (failure) {
      setError((failure as Error).message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <form className="invoke" onSubmit={(event) => void invoke(event)}>
      <h4>Invoke</h4>
      <label>
        Input (JSON)
        <textarea rows={4} value={text} onChange={(event) => setText(event.target.value)} />
      </label>
      <div className="actions">
        <button type="submit" disabled={busy}>
          {busy ? "Invoking…" : "Invoke"}
        </button>
      </div>
      <ErrorLine error={error} />
      {answer && (
        <>
          <p className="muted">answered in {answer.latencyMs != null ? `${answer.latencyMs.toFixed(1)} ms` : "—"}</p>
          <pre className="command" aria-label="answer">
            {JSON.stringify(answer.output, null, 2)}
          </pre>
        </>
      )}
    </form>
  );
}

export function ScaleForm({ service, onScaled }: { service: Service; onScaled: (service: Service) => void }) {
  const [min, setMin] = useState(String(service.replicas.min));
  const [max, setMax] = useState(String(service.replicas.max));
  const [target, setTarget] = useState(String(service.targetRequestsPerReplica));
  const [error, setError] = useState<string | null>(null);

  async function scale(event: FormEvent) {
    event.preventDefault();
    try {
      const scale = { min: Number(min), max: Number(max), targetRequestsPerReplica: Number(target) };
      const data = await gql<{ scaleService: { service: Service | null; userErrors: UserError[] } }>(SCALE_SERVICE, {
        serviceId: service.id,
        scale,
      });
      setError(coded(data.scaleService.userErrors));
      if (data.scaleService.service) onScaled(data.scaleService.service);
    } catch (failure) {
      setError((failure as Error).message);
    }
  }

  return (
    <form className="scale" onSubmit={(event) => void scale(event)}>
      <h4>Scale</h4>
      <div className="form">
        <label>
          Min replicas
          <input type="number" min={0} value={min} onChange={(event) => setMin(event.target.value)} />
        </label>
        <label>
          Max replicas
          <input type="number" min={0} value={max} onChange={(event) => setMax(event.target.value)} />
        </label>
        <label className="wide">
          Target requests per replica
          <input type="number" min={0} step="any" value={target} onChange={(event) => setTarget(event.target.value)} />
        </label>
      </div>
      <div className="actions">
        <button type="submit">Scale</button>
      </div>
      <ErrorLine error={error} />
    </form>
  );
}
