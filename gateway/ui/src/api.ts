/** The REST API client: every call sends the API token (when one was given) as a bearer. */
import { readEvents, type SseMessage } from "./lib/sse";

const TOKEN_KEY = "kestrel.token";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly field?: string,
    readonly errors?: Array<Record<string, unknown>>,
  ) {
    super(message);
  }
}

type Listener = () => void;
const unauthorizedListeners = new Set<Listener>();

export const auth = {
  token(): string | null {
    return localStorage.getItem(TOKEN_KEY);
  },
  setToken(token: string | null): void {
    if (token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
  },
  onUnauthorized(listener: Listener): () => void {
    unauthorizedListeners.add(listener);
    return () => unauthorizedListeners.delete(listener);
  },
};

function headers(extra?: HeadersInit): Headers {
  const out = new Headers(extra);
  const token = auth.token();
  if (token) out.set("Authorization", `Bearer ${token}`);
  return out;
}

async function failure(response: Response): Promise<ApiError> {
  if (response.status === 401) unauthorizedListeners.forEach((l) => l());
  let body: { message?: string; field?: string; errors?: Array<Record<string, unknown>> } = {};
  try {
    body = await response.json();
  } catch {
    /* not JSON */
  }
  return new ApiError(
    response.status,
    body.message ?? `${response.status} ${response.statusText}`,
    body.field,
    body.errors,
  );
}

export async function request<T>(
  method: string,
  path: string,
  body?: unknown,
  contentType = "application/json",
): Promise<T> {
  const init: RequestInit = { method, headers: headers() };
  if (body !== undefined) {
    (init.headers as Headers).set("Content-Type", contentType);
    init.body = typeof body === "string" && contentType !== "application/json" ? body : JSON.stringify(body);
  }
  const response = await fetch(`/api/v1${path}`, init);
  if (!response.ok) throw await failure(response);
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

export const get = <T>(path: string) => request<T>("GET", path);

/** Follow an event stream until it ends or `signal` aborts. */
export async function follow(
  path: string,
  onMessage: (message: SseMessage) => void,
  signal: AbortSignal,
): Promise<void> {
  const response = await fetch(`/api/v1${path}`, { headers: headers(), signal });
  if (!response.ok) throw await failure(response);
  await readEvents(response, onMessage);
}

export function query(params: Record<string, string | number | string[] | undefined | null>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) value.forEach((v) => search.append(key, v));
    else search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

// ---- shapes (camelCase, as the API sends them) ----

export interface StateBody {
  current: string;
  histories: Array<{ state: string; date: string }>;
  startDate?: string | null;
  endDate?: string | null;
  duration?: string | null;
}
export interface Attempt {
  number: number;
  state: StateBody;
  worker?: string | null;
  error?: Record<string, unknown> | null;
}
export interface TaskRun {
  id: string;
  taskId: string;
  parentTaskRunId?: string | null;
  value?: string | null;
  iteration?: number | null;
  state: StateBody;
  attempts: Attempt[];
  outputs?: Record<string, unknown> | null;
}
export interface Execution {
  id: string;
  namespace: string;
  flowId: string;
  flowRevision: number;
  state: StateBody;
  inputs: Record<string, unknown>;
  outputs?: Record<string, unknown> | null;
  labels: Array<{ key: string; value: string }>;
  trigger?: { id?: string | null; variables?: Record<string, unknown> | null } | null;
  originalId?: string | null;
  parentId?: string | null;
  taskRunList?: TaskRun[] | null;
}
export interface Page<T> {
  results: T[];
  total: number;
}
export interface LogLine {
  executionId: string;
  taskRunId?: string | null;
  attemptNumber?: number | null;
  timestamp: string;
  level: string;
  message: string;
  seq: number;
}
export interface FlowSummary {
  id: string;
  namespace: string;
  revision: number;
  description?: string | null;
  disabled: boolean;
  triggers: Array<{ id: string; type: string }>;
  updated: string;
  errors?: Problem[] | null;
  lastExecutionState?: string | null;
}
export interface Problem {
  file: string;
  line: number;
  column: number;
  path: string;
  message: string;
}
export interface InputSpec {
  id: string;
  type: string;
  required?: boolean;
  defaults?: unknown;
  description?: string;
  values?: string[];
  itemType?: string;
  min?: number;
  max?: number;
}
export interface FlowJson {
  id: string;
  namespace: string;
  revision: number;
  source: string;
  inputs?: InputSpec[];
  tasks?: Array<Record<string, unknown>>;
  errors?: Array<Record<string, unknown>>;
  finally?: Array<Record<string, unknown>>;
  triggers?: Array<Record<string, unknown>>;
  disabled?: boolean;
}
export interface Revision {
  id: string;
  namespace: string;
  revision: number;
  deleted: boolean;
  updated: string;
  source: string;
}
export interface Trigger {
  namespace: string;
  flowId: string;
  triggerId: string;
  type: string;
  revision: number;
  status: string;
  lastError?: string | null;
  lastEventDate?: string | null;
  events: number;
  executionsCreated: number;
  duplicates: number;
  deadLetters: number;
  reconnects: number;
  disabled?: boolean;
}
export interface Latency {
  trigger: string;
  kind: string;
  count: number;
  p50: number | null;
  p99: number | null;
  buckets: number[];
  counts: number[];
}
export interface DeadLetter {
  id: string;
  source: string;
  namespace?: string | null;
  flowId?: string | null;
  triggerId?: string | null;
  reason: string;
  attempts: number;
  metadata: Record<string, unknown>;
  createdDate?: string | null;
  payload: string;
  payloadPreview: string;
  redrivenExecutionId?: string | null;
}
export interface KVKey {
  key: string;
  type: string;
  expirationDate?: string | null;
  updateDate: string;
}
export interface ExecutionStats {
  since: string;
  perMinute: Array<{ minute: string; state: string; count: number }>;
  running: number;
  success: number;
  failed: number;
  successRate: number | null;
}
