// The gateway's GraphQL API: queries and mutations over HTTP, subscriptions over graphql-ws.
// A token the gateway refuses (HTTP 401, UNAUTHENTICATED, a WebSocket closed with 4403) signs the user out, with the reason.
import { createClient, type Client } from "graphql-ws";
import { savedToken, signOut } from "./session";

export interface GraphQLErrorShape {
  message: string;
  extensions?: { code?: string };
}

export class ApiError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

const ENDPOINT = "/graphql";

function authorization(): Record<string, string> {
  const token = savedToken();
  return token ? { authorization: `Bearer ${token}` } : {};
}

function refused(code: string | undefined, message: string): never {
  if (code === "UNAUTHENTICATED") signOut(message);
  throw new ApiError(message, code ?? "ERROR");
}

export async function gql<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const response = await fetch(ENDPOINT, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/graphql-response+json", ...authorization() },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json().catch(() => ({}))) as { data?: T; errors?: GraphQLErrorShape[] };
  const first = body.errors?.[0];
  if (response.status === 401) refused("UNAUTHENTICATED", first?.message ?? "the token was refused");
  if (first) refused(first.extensions?.code, first.message);
  if (!body.data) throw new ApiError(`the gateway answered ${response.status}`, "HTTP");
  return body.data;
}

/** GET a file the gateway serves beside the graph (a bill's FOCUS CSV) with the token, and save it. */
export async function download(path: string, filename: string): Promise<void> {
  const response = await fetch(path, { headers: authorization() });
  if (response.status === 401) signOut("the token was refused");
  if (!response.ok) throw new ApiError(`the download failed (${response.status})`, "HTTP");
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = filename;
  link.click();
  URL.revokeObjectURL(link.href);
}

// ------------------------------------------------------------------ subscriptions

/** Increases on every reconnection: a subscription that sees it change knows it may have missed something. */
export let connectionEpoch = 0;
let client: Client | null = null;
const reconnectListeners = new Set<() => void>();

/** Called after every reconnection (not the first connection). */
export function onReconnect(listener: () => void): () => void {
  reconnectListeners.add(listener);
  return () => reconnectListeners.delete(listener);
}

function websocketUrl(): string {
  const url = new URL(ENDPOINT, window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.toString();
}

function socket(): Client {
  if (client) return client;
  client = createClient({
    url: websocketUrl(),
    connectionParams: () => ({ authorization: `Bearer ${savedToken() ?? ""}` }),
    lazy: true,
    keepAlive: 10_000,
    retryAttempts: Number.POSITIVE_INFINITY,
    retryWait: async (retries) => new Promise((resolve) => setTimeout(resolve, Math.min(5_000, 250 * 2 ** retries))),
    shouldRetry: (event) => !(event instanceof CloseEvent && (event.code === 4403 || event.code === 4401)),
  });
  client.on("connected", (_socket, _payload, wasRetry) => {
    if (!wasRetry) return;
    connectionEpoch += 1;
    reconnectListeners.forEach((listener) => listener());
  });
  client.on("closed", (event) => {
    if (event instanceof CloseEvent && event.code === 4403) signOut(event.reason || "the token has been revoked or has expired");
  });
  return client;
}

export function closeSocket(): void {
  client?.dispose();
  client = null;
}

export interface Subscription<T> {
  next: (data: T) => void;
  error?: (error: ApiError) => void;
  complete?: () => void;
}

/**
 * Subscribe; ``variables`` is read again on every (re)subscription, so a caller that keeps
 * e.g. ``after`` current resumes where it stopped when the socket comes back.
 */
export function subscribe<T>(query: string, variables: () => Record<string, unknown>, handlers: Subscription<T>): () => void {
  // graphql-ws sends this object again on each reconnection: the getter gives the variables of that moment
  const payload = {
    query,
    get variables() {
      return variables();
    },
  };
  const unsubscribe = socket().subscribe<T>(
    payload,
    {
      next: (message) => {
        const first = message.errors?.[0] as GraphQLErrorShape | undefined;
        // a token refused in the middle of a stream signs out as a refused request does
        if (first?.extensions?.code === "UNAUTHENTICATED") signOut(first.message);
        if (first) handlers.error?.(new ApiError(first.message, first.extensions?.code ?? "ERROR"));
        else if (message.data) handlers.next(message.data as T);
      },
      error: (error) => {
        if (Array.isArray(error)) {
          const first = error[0] as GraphQLErrorShape | undefined;
          if (first?.extensions?.code === "UNAUTHENTICATED") signOut(first.message);
          handlers.error?.(new ApiError(first?.message ?? "the subscription failed", first?.extensions?.code ?? "ERROR"));
        } else if (!(error instanceof CloseEvent && error.code === 4403)) {
          handlers.error?.(new ApiError(String((error as Error)?.message ?? "the connection failed"), "CONNECTION"));
        }
      },
      complete: () => handlers.complete?.(),
    },
  );
  return unsubscribe;
}
