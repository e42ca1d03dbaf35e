import { afterEach, describe, expect, it, vi } from 'vitest';
import { ApiError, flattenFields, readCookie, request, toApiError, withQuery } from './client';

describe('toApiError', () => {
  it('keeps the hub message, code and fields', () => {
    const err = toApiError(400, { error: { code: 'invalid', message: 'name: This field is required.', fields: { name: 'This field is required.' } } });
    expect(err).toBeInstanceOf(ApiError);
    expect(err.message).toBe('name: This field is required.');
    expect(err.code).toBe('invalid');
    expect(err.fields).toEqual({ name: 'This field is required.' });
  });

  it('says what to do next when the body is not the documented shape', () => {
    expect(toApiError(502, '<html>Bad gateway</html>').message).toMatch(/Try again/);
    expect(toApiError(0, null).message).toMatch(/network connection/);
    expect(toApiError(404, null).isNotFound).toBe(true);
    expect(toApiError(418, null).message).toMatch(/network|try again/i);
  });

  it('flags 401 as needing sign-in', () => {
    expect(toApiError(401, { error: { code: 'not_authenticated', message: 'Sign in.' } }).needsSignIn).toBe(true);
  });
});

describe('flattenFields', () => {
  it('maps nested and list errors to dotted field names', () => {
    expect(
      flattenFields({ advanced: { epochs: 'Too many.' }, files: [{ label: 'Bad label.' }, {}], role: ['Not a choice.', 'Also bad.'] }),
    ).toEqual({ 'advanced.epochs': 'Too many.', 'files.0.label': 'Bad label.', role: 'Not a choice. Also bad.' });
  });
  it('treats a bare string as a form-level error', () => {
    expect(flattenFields('Nope.')).toEqual({ non_field_errors: 'Nope.' });
    expect(flattenFields(undefined)).toEqual({});
  });
});

describe('helpers', () => {
  it('reads cookies', () => {
    expect(readCookie('csrftoken', 'a=1; csrftoken=abc%3D; b=2')).toBe('abc=');
    expect(readCookie('missing', 'a=1')).toBeNull();
  });
  it('builds query strings without empty values', () => {
    expect(withQuery('/x/', { site: 'north', page: 2, label: '', q: undefined })).toBe('/x/?site=north&page=2');
    expect(withQuery('/x/?a=1', { b: 2 })).toBe('/x/?a=1&b=2');
  });
});

describe('request', () => {
  afterEach(() => vi.unstubAllGlobals());

  it('sends the CSRF token on unsafe methods and throws the hub error', async () => {
    document.cookie = 'csrftoken=tok123';
    const fetchMock = vi.fn(async () =>
      new Response(JSON.stringify({ error: { code: 'site_exists', message: 'Already there.' } }), { status: 409 }),
    );
    vi.stubGlobal('fetch', fetchMock);
    await expect(request('POST', '/datasets/', { body: { name: 'x' } })).rejects.toMatchObject({ status: 409, code: 'site_exists', message: 'Already there.' });
    const [url, init] = fetchMock.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe('/api/v1/datasets/');
    expect((init.headers as Record<string, string>)['X-CSRFToken']).toBe('tok123');
    expect(init.credentials).toBe('same-origin');
  });

  it('returns undefined for 204 and turns network failures into an actionable error', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => new Response(null, { status: 204 })));
    await expect(request('DELETE', '/x/')).resolves.toBeUndefined();
    vi.stubGlobal('fetch', vi.fn(async () => { throw new TypeError('Failed to fetch'); }));
    await expect(request('GET', '/x/')).rejects.toMatchObject({ status: 0 });
  });
});
