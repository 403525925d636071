// GET /v1/stream read with fetch() (EventSource cannot send the key), parsed frame by frame, and
// reconnected after a drop with Last-Event-ID so no change is missed or applied twice.
import { authHeaders } from './api.js';
import { frames } from './sse.js';

const MAX_BACKOFF_MS = 10_000;

function httpError(status, text) {
  const error = new Error(`GET /v1/stream answered ${status} ${text}`);
  error.status = status;
  return error;
}

/**
 * Keep a stream open until stop(): onReady(readyData, firstTime) after each (re)connection,
 * onWarning(change) per warning event, onState("open"|"connecting"|"closed"), onFailure(error)
 * when a connection could not be made or broke, onUnauthorized() on a 401 (then it stops).
 */
export function openStream({ onReady, onWarning, onState, onFailure, onUnauthorized }) {
  let cursor = null; // the last event id seen: where a reconnection resumes
  let stopped = false;
  let controller = null;
  let backoff = 1000;
  let timer = null;

  async function connect() {
    if (stopped) return;
    onState('connecting');
    controller = new AbortController();
    const headers = authHeaders({ Accept: 'text/event-stream' });
    if (cursor !== null) headers['Last-Event-ID'] = String(cursor);
    try {
      const resp = await fetch('/v1/stream?include_exercises=true', {
        headers, signal: controller.signal, cache: 'no-store',
      });
      if (resp.status === 401) {
        stopped = true;
        onState('closed');
        onUnauthorized();
        return;
      }
      if (resp.status === 403) {
        // The key may not read warnings: asking again cannot change that.
        stopped = true;
        onState('closed');
        onFailure(httpError(resp.status, 'this key may not read warnings'));
        return;
      }
      if (!resp.ok || !resp.body) throw httpError(resp.status, resp.statusText);
      for await (const frame of frames(resp.body)) {
        if (frame.retry !== null) backoff = Math.min(Math.max(frame.retry, 500), MAX_BACKOFF_MS);
        if (frame.event === 'ready') {
          const ready = JSON.parse(frame.data || '{}');
          const firstTime = cursor === null;
          if (firstTime) cursor = ready.last_event_id ?? null;
          onState('open');
          onReady(ready, firstTime);
        } else if (frame.event === 'warning') {
          if (frame.id !== null) cursor = Number(frame.id);
          onWarning(JSON.parse(frame.data));
        }
      }
      if (!stopped) onFailure(new Error('the stream ended'));
    } catch (err) {
      if (stopped) return;
      onFailure(err);
    }
    if (stopped) return;
    onState('closed');
    timer = setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
  }

  connect();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      controller?.abort();
    },
  };
}
