// The console's one WebSocket (/ws/console, docs/console-protocol.md): connecting, reconnecting
// with `since`, dispatching the server's frames, and the agent's own availability.

import { api, command, failPending, logout, settle } from './console-api.js';
import { applyToHistory, openConversation, paintTyping } from './console-chat.js';
import { paintQueueFilter } from './console-list.js';
import { notifyWaiting } from './console-notify.js';
import { isAdmin, markDirty, scheduleRender, state, upsert, view } from './console-store.js';
import { $, errorText, toast } from './console-util.js';

const TYPING_TTL_MS = 6000; // the protocol: `typing on` is valid for 6 s unless renewed
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];

function socketUrl() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  let url = `${scheme}://${location.host}/ws/console?token=${encodeURIComponent(state.token)}`;
  if (state.lastEventId) url += `&since=${encodeURIComponent(state.lastEventId)}`;
  return url;
}

export function connect() {
  clearTimeout(state.reconnectTimer);
  setConnection('connecting');
  const ws = new WebSocket(socketUrl());
  state.ws = ws;
  let greeted = false;
  ws.onmessage = (msg) => {
    let frame;
    try {
      frame = JSON.parse(msg.data);
    } catch {
      console.warn('console: unreadable frame', msg.data);
      return;
    }
    if (frame.type === 'hello') greeted = true;
    onFrame(frame);
  };
  ws.onclose = () => {
    if (state.ws !== ws) return;
    state.connected = false;
    failPending();
    if (!state.token) return;
    setConnection('offline');
    scheduleReconnect(greeted);
  };
}

async function scheduleReconnect(wasGreeted) {
  if (wasGreeted) state.attempts = 0;
  // A socket refused before `hello` may be a revoked token (401 before the upgrade, which a
  // browser cannot see): ask the REST API, which can tell.
  if (!wasGreeted) {
    try {
      await api('/api/me');
    } catch (err) {
      if (err.status === 401) {
        logout('Your token is no longer accepted. Sign in again.');
        return;
      }
    }
  }
  const base = BACKOFF_MS[Math.min(state.attempts, BACKOFF_MS.length - 1)];
  state.attempts += 1;
  const delay = base / 2 + Math.random() * base; // jitter: consoles do not reconnect in lockstep
  $('conn-text').textContent = `Reconnecting in ${Math.ceil(delay / 1000)} s…`;
  state.reconnectTimer = setTimeout(connect, delay);
}

function setConnection(kind) {
  const labels = { open: 'Live', connecting: 'Connecting…', offline: 'Offline' };
  $('conn').dataset.state = kind;
  $('conn-text').textContent = labels[kind];
}

function onFrame(frame) {
  switch (frame.type) {
    case 'hello':
      return onHello(frame);
    case 'snapshot':
      return onSnapshot(frame);
    case 'event':
      return onEvent(frame);
    case 'typing':
      return onTyping(frame);
    case 'presence':
      return onPresence(frame);
    case 'resync':
      return; // a snapshot follows at once
    case 'ack':
    case 'pong':
      settle(frame);
      return;
    case 'error':
      if (!settle(frame)) toast(`Hub: ${frame.message || frame.code}`);
      return;
    default:
      return; // newer server frames: ignore
  }
}

function onHello(frame) {
  state.connected = true;
  state.attempts = 0;
  setConnection('open');
  if (frame.agent?.queues && !isAdmin()) state.me.queues = frame.agent.queues;
  // The hub makes an agent unavailable when its last console disconnects: put back what the
  // agent chose once the session is live again.
  if (state.wantAvailable) setAvailability(true, state.availability.capacity, { quiet: true });
}

function onSnapshot(snap) {
  state.lastEventId = snap.last_event_id;
  applyAvailability(snap.availability);
  const waitingSince = new Map();
  const now = Date.now();
  const queueNames = [];
  state.team.clear();
  for (const queue of snap.queues || []) {
    queueNames.push(queue.name);
    for (const w of queue.waiting || []) waitingSince.set(w.conversation_id, now - w.waiting_ms);
    for (const agent of queue.agents || []) {
      state.team.set(agent.id, { available: Boolean(agent.online), capacity: agent.capacity });
    }
  }
  state.team.set(state.me.agent, { ...state.availability });
  state.queues = isAdmin() ? queueNames : [...state.me.queues];
  paintQueueFilter();
  // Start over: drop every record (an open chat keeps its record and is reloaded).
  for (const conv of state.conversations.values()) {
    conv.node?.remove();
    conv.node = null;
    conv.history = null;
  }
  const open = state.conversations.get(state.openId);
  state.conversations.clear();
  if (open) state.conversations.set(open.id, open);
  for (const summary of snap.conversations || []) upsert(summary, waitingSince.get(summary.id));
  view.listDirty = true;
  view.teamDirty = true;
  scheduleRender();
  if (open) {
    const fresh = (snap.conversations || []).find((s) => s.id === open.id);
    if (fresh) upsert(fresh, waitingSince.get(fresh.id));
    openConversation(open.id, { reload: true });
  }
}

function onEvent(frame) {
  state.lastEventId = frame.id;
  const ev = frame.event;
  const id = ev.conversation_id;
  const before = state.conversations.get(id);
  const wasQueued = before?.summary.status === 'queued';
  let conv = before;
  if (frame.conversation) {
    const since = ev.type === 'conversation.queued' ? ev.occurred_at : undefined;
    conv = upsert(frame.conversation, since);
  }
  if (!conv) return;
  if (conv.buffer) conv.buffer.push(ev);
  else if (conv.history) applyToHistory(conv, ev);
  if (ev.type === 'inbox.message.received' && (conv.id !== state.openId || document.hidden)) {
    conv.unread += 1;
    markDirty(conv);
  }
  if (ev.type === 'conversation.queued' && conv.summary.status === 'queued' && !wasQueued) notifyWaiting(conv);
  // A customer who writes has stopped typing.
  if (ev.type === 'inbox.message.received' && conv.typing?.who === 'customer') {
    conv.typing = null;
    if (conv.id === state.openId) paintTyping(conv);
  }
}

function onTyping(frame) {
  const conv = state.conversations.get(frame.conversation_id);
  if (!conv) return;
  if (frame.who === 'agent' && frame.agent === state.me.agent) return; // my other tab
  conv.typing = frame.on ? { who: frame.who, agent: frame.agent, until: Date.now() + TYPING_TTL_MS } : null;
  markDirty(conv);
  if (conv.id === state.openId) paintTyping(conv);
}

function onPresence(frame) {
  const info = { available: Boolean(frame.available), capacity: frame.capacity };
  state.team.set(frame.agent, info);
  if (frame.agent === state.me.agent) applyAvailability(info);
  view.teamDirty = true;
  scheduleRender();
}

// ---------------------------------------------------------------------------------------------
// Availability

function applyAvailability(availability) {
  if (!availability) return;
  state.availability = {
    available: Boolean(availability.available),
    capacity: availability.capacity ?? state.availability.capacity,
  };
  const toggle = $('availability');
  toggle.checked = state.availability.available;
  toggle.setAttribute('aria-checked', String(state.availability.available));
  toggle.disabled = false;
  $('availability-text').textContent = state.availability.available ? 'Available' : 'Offline';
  document.body.classList.toggle('is-available', state.availability.available);
  if (document.activeElement !== $('capacity')) $('capacity').value = String(state.availability.capacity);
  if (state.me) {
    state.team.set(state.me.agent, { ...state.availability });
    view.teamDirty = true;
    scheduleRender();
  }
}

export async function setAvailability(available, capacity, { quiet = false } = {}) {
  const toggle = $('availability');
  toggle.disabled = true;
  try {
    const ack = await command('set_availability', { available, capacity });
    state.wantAvailable = available;
    applyAvailability(ack.availability || { available, capacity });
  } catch (err) {
    if (!quiet) toast(`Availability: ${errorText(err)}`);
    applyAvailability(state.availability); // put the switch back where the hub says it is
  }
}
