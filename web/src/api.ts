import type { AnyQuery, AnyResult, Definitions, InsightKind, Project } from "./types";

export const KEY_STORAGE = "ua_api_key";

export function getApiKey(): string | null {
  return sessionStorage.getItem(KEY_STORAGE);
}

export function setApiKey(key: string): void {
  sessionStorage.setItem(KEY_STORAGE, key);
}

export function clearApiKey(): void {
  sessionStorage.removeItem(KEY_STORAGE);
}

/** An API answer with a 4xx/5xx status; `detail` is shown to people exactly as the API worded it. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
  ) {
    super(detail);
    this.name = "ApiError";
  }
}

export function authHeaders(key: string | null = getApiKey()): Record<string, string> {
  return key ? { Authorization: `Bearer ${key}` } : {};
}

export async function errorFromResponse(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => "");
  try {
    const body = JSON.parse(text);
    if (body && typeof body.detail === "string") {
      return new ApiError(res.status, String(body.code ?? res.status), body.detail);
    }
  } catch {
    // Not JSON (a proxy's error page, say): fall back to the raw text.
  }
  return new ApiError(res.status, String(res.status), text.trim() || `${res.status} ${res.statusText}`);
}

interface RequestOptions {
  method?: "GET" | "POST" | "PATCH" | "DELETE";
  body?: unknown;
  key?: string;
  signal?: AbortSignal;
}

export async function apiRequest<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = authHeaders(options.key ?? getApiKey());
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {
    method: options.method ?? "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    signal: options.signal,
  });
  if (!res.ok) throw await errorFromResponse(res);
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

export function errorText(err: unknown): string {
  if (err instanceof ApiError) return err.detail;
  if (err instanceof Error) return err.message;
  return String(err);
}

export function isAbort(err: unknown): boolean {
  return err instanceof DOMException && err.name === "AbortError";
}

export const fetchProject = (key?: string) => apiRequest<Project>("/api/projects/me", { key });
export const fetchDefinitions = () => apiRequest<Definitions>("/api/definitions");

export function runInsight(kind: InsightKind, query: AnyQuery, signal?: AbortSignal): Promise<AnyResult> {
  return apiRequest<AnyResult>(`/api/${kind}`, { method: "POST", body: query, signal });
}
