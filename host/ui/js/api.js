// The operator API: JSON over fetch with the session cookie, the CSRF token
// (kept in memory only) on every POST, and one place that notices a 401.

let csrfToken = null;
let unauthorized = () => {};

export function setCsrf(token) { csrfToken = token || null; }
export function onUnauthorized(fn) { unauthorized = fn; }

export class ApiError extends Error {
  constructor(status, body, fallback) {
    super(describe(status, body, fallback));
    this.status = status;
    this.body = body;
  }
}

function describe(status, body, fallback) {
  if (body && typeof body === 'object' && typeof body.error === 'string') {
    let text = body.error;
    if (Array.isArray(body.details) && body.details.length) {
      const parts = body.details.map((d) => {
        if (d && typeof d === 'object') {
          const path = Array.isArray(d.path) ? d.path.join('.') : d.path;
          return path ? `${path}: ${d.message ?? ''}` : String(d.message ?? JSON.stringify(d));
        }
        return String(d);
      });
      text += ` (${parts.join('; ')})`;
    } else if (typeof body.details === 'string') {
      text += ` (${body.details})`;
    }
    if (status === 409 && body.status) text += ` — status: ${String(body.status).replace(/_/g, ' ')}`;
    if (body.resolve_in) text += ` — resolve it in ${body.resolve_in}`;
    if (Number.isFinite(body.retry_after_seconds)) text += ` (retry in ${Math.ceil(body.retry_after_seconds)} s)`;
    return text;
  }
  return fallback || `Request failed (HTTP ${status})`;
}

/**
 * `api('/api/audit?limit=50')`, `api(path, {method: 'POST', body: {...}})`.
 * Resolves to the parsed JSON; rejects with ApiError (status 0 when the
 * server could not be reached).
 */
export async function api(path, { method = 'GET', body, signal, quiet401 = false } = {}) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) headers['x-helio-csrf'] = csrfToken;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
      signal,
    });
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError(0, null, 'Helio could not be reached');
  }
  let data = null;
  const type = response.headers.get('content-type') || '';
  if (type.includes('json')) {
    try { data = await response.json(); } catch { data = null; }
  }
  if (response.status === 401 && !quiet401) unauthorized();
  if (!response.ok) throw new ApiError(response.status, data, `Request failed (HTTP ${response.status})`);
  return data;
}

export const post = (path, body, opts = {}) => api(path, { ...opts, method: 'POST', body: body ?? {} });

/** The auth state: `{auth_required, authenticated, expires_at, csrf_token}`. */
export const authSession = () => api('/api/auth/session', { quiet401: true });
