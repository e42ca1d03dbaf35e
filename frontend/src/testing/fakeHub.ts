/**
 * A stand-in for the hub's REST API in component tests: answers `fetch` from a table of routes and
 * records every call, so a test can assert what the dashboard sent. Unknown routes answer 404 in the
 * hub's error shape, like the real hub.
 */
import { vi } from 'vitest';

export interface Call {
  method: string;
  /** The path with its query string, as sent. */
  path: string;
  /** The query parameters, e.g. `{ site: 'borough', page: '1' }`, so routes and tests can read the filters. */
  query: Record<string, string>;
  body: unknown;
}

export class Reply {
  constructor(readonly status: number, readonly body: unknown) {}
}

export const reply = (status: number, body: unknown) => new Reply(status, body);
export const refusal = (status: number, code: string, message: string, fields?: Record<string, unknown>) =>
  reply(status, { error: { code, message, ...(fields ? { fields } : {}) } });

/** `"GET /federated-jobs/3/"` (paths without /api/v1 and without the query) to a body, a Reply, or a function of the call. */
export type Routes = Record<string, unknown | ((call: Call) => unknown)>;

export function fakeHub(routes: Routes, { schemaPaths = [] as string[] } = {}) {
  const calls: Call[] = [];
  const all: Routes = {
    'GET /schema/': { paths: Object.fromEntries(schemaPaths.map((p) => [`/api/v1${p}`, {}])) },
    ...routes,
  };
  const fetchMock = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = new URL(String(input), 'http://hub.test');
    const method = (init?.method ?? 'GET').toUpperCase();
    const path = url.pathname.replace(/^\/api\/v1/, '');
    const call: Call = {
      method,
      path: path + url.search,
      query: Object.fromEntries(url.searchParams),
      body: init?.body ? JSON.parse(String(init.body)) : undefined,
    };
    calls.push(call);
    const route = all[`${method} ${path}`];
    // A route may answer later (a promise), like a hub that holds a long-poll.
    let answer: unknown = route === undefined
      ? refusal(404, 'not_found', `No fake route for ${method} ${path}`)
      : typeof route === 'function' ? await (route as (c: Call) => unknown)(call) : route;
    if (!(answer instanceof Reply)) answer = reply(200, answer);
    const { status, body } = answer as Reply;
    return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
  });
  vi.stubGlobal('fetch', fetchMock);
  document.cookie = 'csrftoken=test-token';
  return {
    calls,
    /** The calls with this method whose path starts with `prefix`. */
    sent: (method: string, prefix: string) => calls.filter((c) => c.method === method && c.path.startsWith(prefix)),
  };
}
