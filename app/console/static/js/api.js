// The operator's key (this tab only: sessionStorage) and every call to the API made with it.
import { t } from './i18n.js';

const KEY = 'citywarn.key';

export const session = {
  key: () => sessionStorage.getItem(KEY),
  set: (key) => sessionStorage.setItem(KEY, key),
  clear: () => sessionStorage.removeItem(KEY),
};

/** An API refusal, worded from its problem+json document: detail, then each field at fault. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let unauthorized = () => {};

/** What to do when any call answers 401: the key expired or was revoked, so sign in again. */
export function onUnauthorized(fn) {
  unauthorized = fn;
}

export function authHeaders(extra = {}) {
  return { Authorization: `Bearer ${session.key() ?? ''}`, ...extra };
}

async function problemMessage(resp) {
  let detail = `${resp.status} ${resp.statusText}`;
  try {
    const doc = await resp.json();
    if (typeof doc.detail === 'string' && doc.detail) detail = doc.detail;
    const fields = (Array.isArray(doc.errors) ? doc.errors : [])
      .map((e) => `${e.field}: ${e.reason}`)
      .filter((text) => !detail.includes(text)); // a single error is often the detail already
    if (fields.length) detail += `: ${fields.join('; ')}`;
  } catch {
    // not a problem document: the status line says what there is to say
  }
  return detail;
}

/** fetch() with the key; a non-2xx answer throws ApiError, a 401 also signs out (unless quiet401). */
export async function request(path, { method = 'GET', body, quiet401 = false, signal } = {}) {
  const headers = authHeaders(body === undefined ? {} : { 'Content-Type': 'application/json' });
  let resp;
  try {
    resp = await fetch(path, {
      method, headers, signal, cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, t('error.network'));
  }
  if (resp.ok) return resp;
  const error = new ApiError(resp.status, await problemMessage(resp));
  if (resp.status === 401 && !quiet401) unauthorized(error);
  throw error;
}

export async function getJson(path, options) {
  return (await request(path, options)).json();
}

export async function postJson(path, body = {}) {
  return (await request(path, { method: 'POST', body })).json();
}

export async function deleteJson(path) {
  return (await request(path, { method: 'DELETE' })).json();
}

/** A file fetched with the key and handed to the browser as a download (an <a download> on a Blob). */
export async function download(path, filename) {
  const blob = await (await request(path)).blob();
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
