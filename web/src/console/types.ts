// The shapes the console's queries select (see queries.ts).
export interface Money {
  amount: string;
  currency: string;
}

export interface Progress {
  fraction: number | null;
  step?: number | null;
  totalSteps?: number | null;
  message: string | null;
  metrics?: Record<string, unknown> | null;
  at?: string;
}

export interface JobRow {
  id: string;
  name: string;
  state: string;
  submittedAt: string;
  finishedAt: string | null;
  progress: Progress | null;
  center: { name: string } | null;
}

export interface Candidate {
  score: number | null;
  chosen: boolean;
  reason: string | null;
  center: { name: string; displayName: string } | null;
}

export interface Job extends JobRow {
  kind: string;
  failureReason: string | null;
  exitCode: number | null;
  command: string[];
  startedAt: string | null;
  request: Record<string, number | string | null>;
  center: { name: string; displayName: string } | null;
  computeUnit: { accelerator: { model: string }; pricePerUnitHour: Money } | null;
  placement: { policy: string | null; waiting: string | null; candidates: Candidate[] } | null;
  inputs: { id: string; name: string; version: string }[];
  usage: { standardUnitHours: string; amount: Money } | null;
}

export interface JobEvent {
  seq: number;
  at: string;
  kind: string;
  state: string | null;
  message: string | null;
  progress: Progress | null;
}

export interface UserError {
  code: string;
  message: string;
  field: string[] | null;
}

export interface Edges<T> {
  edges: { node: T }[];
}

export const JOB_STATES = ["PENDING", "QUEUED", "STARTING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLING", "CANCELLED"] as const;
export const FINAL_STATES = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);

export interface Service {
  id: string;
  name: string;
  state: string;
  failureReason: string | null;
  endpoint: string;
  requestsTotal: string;
  createdAt: string;
  stoppedAt: string | null;
  targetRequestsPerReplica: number;
  replicas: { min: number; max: number; ready: number; desired: number };
  model: { id: string; name: string; version: string };
  center: { name: string; displayName: string } | null;
  pricePerUnitHour: Money | null;
}

export interface ServiceEvent {
  seq: number;
  at: string;
  kind: string;
  state: string | null;
  replicasReady: number | null;
  message: string | null;
}

export const SERVICE_STATES = ["DEPLOYING", "READY", "DEGRADED", "SCALING", "STOPPING", "STOPPED", "FAILED"] as const;
export const SERVICE_FINAL_STATES = new Set(["STOPPED", "FAILED"]);
