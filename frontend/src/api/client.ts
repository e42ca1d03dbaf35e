/** A small typed client for the hub's REST API: session cookies, CSRF and the error shape. */

export interface ApiErrorBody {
  code: string;
  message: string;
  fields?: Record<string, unknown>;
}

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly fields: Record<string, string>;

  constructor(status: number, body: ApiErrorBody) {
    super(body.message);
    this.name = 'ApiError';
    this.status = status;
    this.code = body.code;
    this.fields = flattenFields(body.fields);
  }

  get isNotFound(): boolean {
    return this.status === 404;
  }

  get needsSignIn(): boolean {
    return this.status === 401 || this.code === 'not_authenticated';
  }
}

export interface Page<T> {
  count: number;
  next: string | null;
  previous: string | null;
  results: T[];
}

/** Turn the API's nested `fields` into `{ "field": "sentence", "files.0.label": "sentence" }`. */
export function flattenFields(fields: unknown, prefix = ''): Record<string, string> {
  const out: Record<string, string> = {};
  if (fields == null) return out;
  if (typeof fields === 'string' || typeof fields === 'number') {
    out[prefix || 'non_field_errors'] = String(fields);
    return out;
  }
  if (Array.isArray(fields)) {
    if (fields.every((item) => typeof item === 'string')) {
      out[prefix || 'non_field_errors'] = fields.join(' ');
      return out;
    }
    fields.forEach((item, index) => {
      Object.assign(out, flattenFields(item, prefix ? `${prefix}.${index}` : String(index)));
    });
    return out;
  }
  if (typeof fields === 'object') {
    for (const [key, value] of Object.entries(fields as Record<string, unknown>)) {
      Object.assign(out, flattenFields(value, prefix ? `${prefix}.${key}` : key));
    }
  }
  return out;
}

const FALLBACK_MESSAGES: Record<number, string> = {
  0: 'Pollen could not reach the hub. Check your network connection and try again.',
  401: 'Your session has ended. Sign in again to continue.',
  403: 'Your role at this site does not allow this. Ask your site administrator.',
  404: 'Nothing was found here, or you do not have access to it. Check the address or pick another site.',
  413: 'That request is too large. Send fewer files at once.',
  429: 'Too many attempts. Wait a minute and try again.',
  500: 'The hub hit an unexpected problem. Try again in a minute; if it keeps happening, tell your site administrator.',
  502: 'The hub is not answering. Try again in a minute.',
  503: 'This service is busy or unavailable right now. Try again in a minute.',
};

/** Build an ApiError from any response, whether or not it carries the documented error shape. */
export function toApiError(status: number, payload: unknown): ApiError {
  const body = (payload as { error?: Partial<ApiErrorBody> } | null)?.error;
  if (body && typeof body.message === 'string' && body.message) {
    return new ApiError(status, { code: body.code ?? 'error', message: body.message, fields: body.fields });
  }
  const message = FALLBACK_MESSAGES[status] ?? FALLBACK_MESSAGES[status >= 500 ? 500 : 0];
  return new ApiError(status, { code: status === 404 ? 'not_found' : 'error', message });
}

export function readCookie(name: string, cookieString: string = document.cookie): string | null {
  for (const part of cookieString.split(';')) {
    const [key, ...rest] = part.trim().split('=');
    if (key === name) return decodeURIComponent(rest.join('='));
  }
  return null;
}

type Query = Record<string, string | number | boolean | null | undefined>;

export function withQuery(path: string, query?: Query): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === '') continue;
    params.set(key, String(value));
  }
  const qs = params.toString();
  return qs ? `${path}${path.includes('?') ? '&' : '?'}${qs}` : path;
}

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
let csrfPromise: Promise<void> | null = null;

async function ensureCsrf(): Promise<string> {
  let token = readCookie('csrftoken');
  if (!token) {
    csrfPromise ??= fetch('/api/v1/auth/csrf/', { credentials: 'same-origin' }).then(() => undefined);
    await csrfPromise;
    csrfPromise = null;
    token = readCookie('csrftoken');
  }
  return token ?? '';
}

/** Listeners told when any call answers 401, so the app can send the person to sign in. */
const unauthorizedListeners = new Set<() => void>();
export function onUnauthorized(listener: () => void): () => void {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}

export async function request<T>(
  method: string,
  path: string,
  options: { body?: unknown; query?: Query; signal?: AbortSignal } = {},
): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  if (UNSAFE.has(method)) headers['X-CSRFToken'] = await ensureCsrf();
  let response: Response;
  try {
    response = await fetch(withQuery(`/api/v1${path}`, options.query), {
      method,
      headers,
      credentials: 'same-origin',
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: options.signal,
    });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw toApiError(0, null);
  }
  if (response.status === 204) return undefined as T;
  let payload: unknown = null;
  const text = await response.text();
  if (text) {
    try {
      payload = JSON.parse(text);
    } catch {
      payload = null;
    }
  }
  if (!response.ok) {
    const error = toApiError(response.status, payload);
    if (error.needsSignIn && !path.startsWith('/auth/')) unauthorizedListeners.forEach((fn) => fn());
    throw error;
  }
  return payload as T;
}

export const api = {
  get: <T>(path: string, query?: Query, signal?: AbortSignal) => request<T>('GET', path, { query, signal }),
  post: <T>(path: string, body?: unknown) => request<T>('POST', path, { body: body ?? {} }),
  patch: <T>(path: string, body: unknown) => request<T>('PATCH', path, { body }),
  del: (path: string) => request<void>('DELETE', path),
};

/** Whether the hub's schema lists an endpoint yet (features being built land one by one). */
let schemaPaths: Promise<Set<string>> | null = null;
export function apiHasPath(path: string): Promise<boolean> {
  schemaPaths ??= fetch('/api/v1/schema/?format=json', { credentials: 'same-origin' })
    .then((r) => (r.ok ? r.json() : { paths: {} }))
    .then((schema: { paths?: Record<string, unknown> }) => new Set(Object.keys(schema.paths ?? {})))
    .catch(() => new Set<string>());
  return schemaPaths.then((paths) => paths.has(`/api/v1${path}`));
}
