// The console's plumbing to the hub: REST calls, commands over the socket (each settled by its
// ack or error) and the end of a session.

import { state } from './console-store.js';
import { errorText, toast } from './console-util.js';

export const TOKEN_KEY = 'switchboard.console.token';
const COMMAND_TIMEOUT_MS = 15000;

// ---------------------------------------------------------------------------------------------
// REST

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export async function api(path, token = state.token) {
  let res;
  try {
    res = await fetch(path, { headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' } });
  } catch {
    throw new ApiError(0, 'network', 'Cannot reach the hub.');
  }
  if (res.ok) return res.json();
  const body = await res.json().catch(() => null);
  throw new ApiError(res.status, body?.error?.code || 'http', body?.error?.message || `HTTP ${res.status}`);
}

export function conversationPath(id) {
  // `:` and `.` may be sent as is (openapi.json); keeping them makes the URLs readable.
  return `/api/conversations/${encodeURIComponent(id).replace(/%3A/gi, ':')}`;
}

// ---------------------------------------------------------------------------------------------
// Commands over the socket: each carries a ref and settles on its ack or error.

class CommandError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

export function command(type, fields = {}) {
  return new Promise((resolve, reject) => {
    const ws = state.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || !state.connected) {
      reject(new CommandError('offline', 'not connected'));
      return;
    }
    const ref = `c${++state.refSeq}`;
    const timer = setTimeout(() => {
      state.pending.delete(ref);
      reject(new CommandError('timeout', 'no answer'));
    }, COMMAND_TIMEOUT_MS);
    state.pending.set(ref, { resolve, reject, timer });
    ws.send(JSON.stringify({ type, ref, ...fields }));
  });
}

/** Runs a command and shows its failure as a toast; resolves to the ack or null. */
export async function act(type, fields, label) {
  try {
    return await command(type, fields);
  } catch (err) {
    toast(`${label}: ${errorText(err)}`);
    return null;
  }
}

export function settle(frame) {
  const entry = frame.ref !== undefined ? state.pending.get(frame.ref) : undefined;
  if (!entry) return false;
  state.pending.delete(frame.ref);
  clearTimeout(entry.timer);
  if (frame.type === 'error') entry.reject(new CommandError(frame.code, frame.message));
  else entry.resolve(frame);
  return true;
}

export function failPending() {
  for (const [ref, entry] of state.pending) {
    clearTimeout(entry.timer);
    entry.reject(new CommandError('offline', 'connection lost'));
    state.pending.delete(ref);
  }
}

// ---------------------------------------------------------------------------------------------
// Sign-out

export function logout(message) {
  state.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  clearTimeout(state.reconnectTimer);
  const ws = state.ws;
  state.ws = null;
  ws?.close();
  failPending();
  location.hash = '';
  // A clean slate is simplest: reload the page, carrying the reason over.
  if (message) sessionStorage.setItem('switchboard.console.notice', message);
  location.reload();
}
