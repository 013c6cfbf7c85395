// What the console knows: the page state, one record per conversation in scope (upsert/drop),
// and the dirty marks that the once-per-frame render pass (console.js) flushes.

export const state = {
  token: null,
  me: null, // GET /api/me: {tenant, agent, role, queues}
  ws: null,
  connected: false,
  lastEventId: null,
  attempts: 0,
  reconnectTimer: null,
  refSeq: 0,
  pending: new Map(), // ref -> {resolve, reject, timer}
  conversations: new Map(), // id -> conversation record (see record())
  queues: [], // queue names shown in the filter
  team: new Map(), // agent id -> {available, capacity}
  availability: { available: false, capacity: 5 },
  wantAvailable: false, // what the agent chose; re-applied after a reconnect
  tab: 'waiting',
  queueFilter: null,
  openId: null,
};

export function isAdmin() {
  return state.me?.role === 'admin';
}

export function authorLabel(author) {
  if (!author) return '';
  switch (author.role) {
    case 'agent':
      return author.id === state.me?.agent ? 'You' : author.id;
    case 'bot':
      return 'AI assistant';
    case 'system':
      return 'Switchboard';
    case 'integration':
      return author.id ? `Integration · ${author.id}` : 'Integration';
    default:
      return 'Customer';
  }
}

// ---------------------------------------------------------------------------------------------
// Conversation records

function record(summary) {
  return {
    id: summary.id,
    summary,
    waitingSince: null, // ms since epoch (client clock) the conversation started waiting
    unread: 0,
    typing: null, // {who, agent, until}
    history: null, // loaded timeline items, oldest first
    byKey: new Map(),
    byProvider: new Map(),
    buffer: null, // events that arrive while the history is loading
    loading: null,
    windowOpen: true,
    node: null,
  };
}

export function inScope(summary) {
  if (summary.status === 'queued') return isAdmin() || state.me.queues.includes(summary.queue);
  if (summary.status === 'assigned') return isAdmin() || summary.agent === state.me.agent;
  return false;
}

/** Stores a summary; returns the record, or null when it left what this account works on. */
export function upsert(summary, waitingSince) {
  let conv = state.conversations.get(summary.id);
  if (!inScope(summary) && summary.id !== state.openId) {
    if (conv) drop(conv);
    return null;
  }
  if (!conv) {
    conv = record(summary);
    state.conversations.set(summary.id, conv);
  }
  const wasQueued = conv.summary.status === 'queued' && conv.waitingSince !== null;
  conv.summary = summary;
  if (summary.status !== 'queued') conv.waitingSince = null;
  else if (waitingSince !== undefined) conv.waitingSince = Math.min(waitingSince, Date.now());
  else if (!wasQueued) conv.waitingSince = Math.min(summary.updated_at_ms || Date.now(), Date.now());
  markDirty(conv);
  return conv;
}

export function drop(conv) {
  state.conversations.delete(conv.id);
  conv.node?.remove();
  view.listDirty = true;
  scheduleRender();
}

// ---------------------------------------------------------------------------------------------
// Dirty marks, flushed once per animation frame by the render pass (console.js).

export const view = {
  dirty: new Set(),
  listDirty: false,
  teamDirty: false,
  chatHeadDirty: false,
  revealOpen: false, // scroll the list to the open conversation after the next render
  frame: 0,
};

export function markDirty(conv) {
  view.dirty.add(conv.id);
  view.listDirty = true;
  if (conv.id === state.openId) view.chatHeadDirty = true;
  scheduleRender();
}

// The pass itself paints both the list and the open chat, so it lives in the entry module,
// which hands it over at start-up; this module stays below every painter.
let renderPass = () => {};

export function setRenderer(render) {
  renderPass = render;
}

export function scheduleRender() {
  if (!view.frame) view.frame = requestAnimationFrame(renderPass);
}
