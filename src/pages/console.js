// Switchboard agent console: one page, one WebSocket (/ws/console, docs/console-protocol.md),
// REST only for a conversation's history (GET /api/conversations/{id}).
//
// Performance model (hundreds of open conversations): conversations live in one Map; every
// change marks the conversation dirty and one requestAnimationFrame pass patches only the dirty
// list items, then re-sorts the visible list by moving existing nodes. History is fetched once
// per conversation and then kept current from the pushed events.

const TOKEN_KEY = 'switchboard.console.token';
const HISTORY_SIZE = 50;
const TYPING_TTL_MS = 6000; // the protocol: `typing on` is valid for 6 s unless renewed
const TYPING_RENEW_MS = 3000; // how often we re-send `typing on` while the agent keeps typing
const TYPING_IDLE_MS = 4000; // silence after which we send `typing off`
const COMMAND_TIMEOUT_MS = 15000;
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];

const $ = (id) => document.getElementById(id);

const state = {
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

// ---------------------------------------------------------------------------------------------
// Small helpers

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function isAdmin() {
  return state.me?.role === 'admin';
}

function channelKind(summary) {
  const channel = summary.channel || summary.id.split(':')[1] || '';
  return channel.split('.')[0];
}

const CHANNEL_LABELS = { whatsapp: 'WhatsApp', telegram: 'Telegram', webchat: 'Web chat' };

function channelLabel(summary) {
  const kind = channelKind(summary);
  return CHANNEL_LABELS[kind] || kind || 'Unknown';
}

function formatPhone(key) {
  // Brazilian numbers read better grouped: +55 11 98765-4321.
  const m = /^55(\d{2})(\d{4,5})(\d{4})$/.exec(key);
  return m ? `+55 ${m[1]} ${m[2]}-${m[3]}` : `+${key}`;
}

function channelInitials(summary) {
  return { whatsapp: 'WA', telegram: 'TG', webchat: 'WC' }[channelKind(summary)] || '#';
}

function contactName(summary) {
  const contact = summary.contact;
  if (contact?.name) return contact.name;
  const kind = channelKind(summary);
  // A web-chat contact key is the visitor's secret id: never shown.
  if (kind === 'webchat') return 'Web visitor';
  const key = contact?.key || summary.id.split(':').pop();
  if (kind === 'whatsapp') return formatPhone(key);
  return `${CHANNEL_LABELS[kind] || kind} ${key}`;
}

function contactDetail(summary) {
  const kind = channelKind(summary);
  const key = summary.contact?.key;
  if (!key || kind === 'webchat') return null;
  return kind === 'whatsapp' ? formatPhone(key) : `id ${key}`;
}

function initials(name) {
  const words = name.replace(/[^\p{L}\p{N} ]/gu, '').trim().split(/\s+/).filter(Boolean);
  if (words.length === 0) return '#';
  return (words[0][0] + (words.length > 1 ? words[words.length - 1][0] : '')).toUpperCase();
}

function hue(text) {
  let h = 0;
  for (const ch of text) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

function paintAvatar(node, name, seed, fallback) {
  // A name without letters (a phone number) makes poor initials: use the channel's.
  node.textContent = /\p{L}/u.test(name) || !fallback ? initials(name) : fallback;
  node.style.setProperty('--h', hue(seed || name));
}

function formatWait(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

function formatClock(ms) {
  if (!ms) return '';
  const date = new Date(ms);
  const today = new Date();
  const time = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return date.toDateString() === today.toDateString()
    ? time
    : `${date.toLocaleDateString([], { day: '2-digit', month: '2-digit' })} ${time}`;
}

function contentText(content) {
  if (!content) return '';
  switch (content.kind) {
    case 'text':
    case 'edit':
    case 'menu':
      return content.body ?? '';
    case 'choice':
      return content.title ?? content.id ?? '';
    case 'media':
      return content.caption ? `[${content.media}] ${content.caption}` : `[${content.media}]`;
    case 'location':
      return `[location] ${content.name || `${content.latitude}, ${content.longitude}`}`;
    case 'contacts':
      return `[contacts] ${(content.names || []).join(', ')}`;
    case 'reaction':
      return `[reaction ${content.emoji}]`;
    default:
      return `[${content.kind}]`;
  }
}

/** A menu's text without the numbered option lines ("1. Vendas") the hub adds for text-only
 *  channels: here the options are drawn as buttons. */
function menuText(text, options) {
  if (!options?.length) return text;
  const titles = new Set(options.map((o) => o.title.trim()));
  const lines = text.split('\n');
  while (lines.length > 1) {
    const m = /^\s*\d+\s*[.)-]\s*(.+?)\s*$/.exec(lines[lines.length - 1]);
    if (!m || !titles.has(m[1])) break;
    lines.pop();
  }
  return lines.join('\n').trimEnd();
}

function authorLabel(author) {
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
// Toasts

function toast(message, kind = 'error') {
  const node = el('div', `toast toast-${kind}`, message);
  node.dataset.testid = 'toast';
  node.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  $('toasts').append(node);
  setTimeout(() => node.classList.add('toast-leave'), kind === 'error' ? 6000 : 3000);
  setTimeout(() => node.remove(), kind === 'error' ? 6400 : 3400);
}

const ERROR_TEXT = {
  already_taken: 'Someone else took this conversation first.',
  not_available: 'You must be available (and below capacity) for that.',
  not_assigned: 'This conversation is assigned to someone else.',
  window_closed: "WhatsApp's 24-hour window has closed: only templates can be sent.",
  closed: 'This ticket is closed.',
  not_found: 'That conversation is no longer visible to you.',
  unknown_queue: 'No such queue.',
  unavailable: 'The hub could not do it right now; try again.',
  offline: 'Not connected to the hub; try again in a moment.',
  timeout: 'The hub did not answer in time.',
};

function errorText(err) {
  return ERROR_TEXT[err.code] || err.message || err.code || 'Something went wrong.';
}

// ---------------------------------------------------------------------------------------------
// REST

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path, token = state.token) {
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

function conversationPath(id) {
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

function command(type, fields = {}) {
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
async function act(type, fields, label) {
  try {
    return await command(type, fields);
  } catch (err) {
    toast(`${label}: ${errorText(err)}`);
    return null;
  }
}

function settle(frame) {
  const entry = frame.ref !== undefined ? state.pending.get(frame.ref) : undefined;
  if (!entry) return false;
  state.pending.delete(frame.ref);
  clearTimeout(entry.timer);
  if (frame.type === 'error') entry.reject(new CommandError(frame.code, frame.message));
  else entry.resolve(frame);
  return true;
}

function failPending() {
  for (const [ref, entry] of state.pending) {
    clearTimeout(entry.timer);
    entry.reject(new CommandError('offline', 'connection lost'));
    state.pending.delete(ref);
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

function inScope(summary) {
  if (summary.status === 'queued') return isAdmin() || state.me.queues.includes(summary.queue);
  if (summary.status === 'assigned') return isAdmin() || summary.agent === state.me.agent;
  return false;
}

/** Stores a summary; returns the record, or null when it left what this account works on. */
function upsert(summary, waitingSince) {
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

function drop(conv) {
  state.conversations.delete(conv.id);
  conv.node?.remove();
  view.listDirty = true;
  scheduleRender();
}

// ---------------------------------------------------------------------------------------------
// Rendering: dirty sets flushed once per animation frame.

const view = {
  dirty: new Set(),
  listDirty: false,
  teamDirty: false,
  chatHeadDirty: false,
  revealOpen: false, // scroll the list to the open conversation after the next render
  frame: 0,
};

function markDirty(conv) {
  view.dirty.add(conv.id);
  view.listDirty = true;
  if (conv.id === state.openId) view.chatHeadDirty = true;
  scheduleRender();
}

function scheduleRender() {
  if (!view.frame) view.frame = requestAnimationFrame(render);
}

function render() {
  view.frame = 0;
  for (const id of view.dirty) {
    const conv = state.conversations.get(id);
    if (conv?.node) paintItem(conv);
  }
  view.dirty.clear();
  if (view.listDirty) {
    view.listDirty = false;
    reorderList();
    paintCounts();
  }
  if (view.revealOpen) {
    view.revealOpen = false;
    revealOpenItem();
  }
  if (view.teamDirty) {
    view.teamDirty = false;
    paintTeam();
  }
  if (view.chatHeadDirty) {
    view.chatHeadDirty = false;
    paintChatHead();
  }
}

function matchesTab(summary, tab) {
  if (tab === 'waiting') return summary.status === 'queued';
  if (tab === 'mine') return summary.status === 'assigned' && summary.agent === state.me.agent;
  return summary.status === 'queued' || summary.status === 'assigned';
}

function visibleConversations() {
  const out = [];
  for (const conv of state.conversations.values()) {
    if (!inScope(conv.summary)) continue;
    if (state.queueFilter && conv.summary.queue !== state.queueFilter) continue;
    if (matchesTab(conv.summary, state.tab)) out.push(conv);
  }
  if (state.tab === 'waiting') out.sort((a, b) => (a.waitingSince ?? 0) - (b.waitingSince ?? 0));
  else out.sort((a, b) => (b.summary.updated_at_ms ?? 0) - (a.summary.updated_at_ms ?? 0));
  return out;
}

/** Puts the visible items in order, moving existing nodes only where the order changed. */
function reorderList() {
  const list = $('conversation-list');
  const convs = visibleConversations();
  let cursor = list.firstElementChild;
  for (const conv of convs) {
    const node = conv.node || createItem(conv);
    if (node === cursor) cursor = cursor.nextElementSibling;
    else list.insertBefore(node, cursor);
  }
  while (cursor) {
    const next = cursor.nextElementSibling;
    cursor.remove();
    cursor = next;
  }
  $('list-empty').hidden = convs.length > 0;
}

function createItem(conv) {
  const li = el('li', 'conv');
  li.dataset.testid = 'conversation-item';
  li.dataset.conversationId = conv.id;
  li.tabIndex = 0;
  li.setAttribute('role', 'button');
  const avatar = el('span', 'avatar');
  const body = el('div', 'conv-body');
  const top = el('div', 'conv-row');
  const name = el('strong', 'conv-name');
  const time = el('span', 'conv-time');
  top.append(name, time);
  const mid = el('div', 'conv-row');
  const preview = el('span', 'conv-preview');
  const badge = el('span', 'badge');
  badge.dataset.testid = 'unread-badge';
  mid.append(preview, badge);
  const tags = el('div', 'conv-tags');
  body.append(top, mid, tags);
  li.append(avatar, body);
  conv.node = li;
  conv.parts = { avatar, name, time, preview, badge, tags };
  paintItem(conv);
  return li;
}

function previewText(conv) {
  if (conv.typing) return conv.typing.who === 'customer' ? 'typing…' : `${conv.typing.agent || 'agent'} is typing…`;
  const last = conv.summary.last_message;
  if (!last) return 'No messages yet';
  const role = last.author?.role;
  if (role === 'customer') return last.text;
  return `${authorLabel(last.author)}: ${last.text}`;
}

function paintItem(conv) {
  const s = conv.summary;
  const p = conv.parts;
  const name = contactName(s);
  const li = conv.node;
  li.dataset.status = s.status;
  li.dataset.queue = s.queue || '';
  li.classList.toggle('active', conv.id === state.openId);
  li.classList.toggle('unread', conv.unread > 0);
  paintAvatar(p.avatar, name, s.id, channelInitials(s));
  p.name.textContent = name;
  p.preview.textContent = previewText(conv);
  p.preview.classList.toggle('is-typing', Boolean(conv.typing));
  p.badge.textContent = conv.unread > 99 ? '99+' : String(conv.unread);
  p.badge.hidden = conv.unread === 0;
  paintItemTime(conv);
  const tags = [el('span', `chan chan-${channelKind(s)}`, channelLabel(s))];
  if (s.queue) tags.push(el('span', 'tag', s.queue));
  if (s.status === 'assigned' && s.agent && s.agent !== state.me.agent) tags.push(el('span', 'tag tag-agent', s.agent));
  p.tags.replaceChildren(...tags);
}

function paintItemTime(conv) {
  const time = conv.parts.time;
  if (conv.summary.status === 'queued' && conv.waitingSince !== null) {
    time.textContent = `◷ ${formatWait(Date.now() - conv.waitingSince)}`;
    time.classList.add('waiting');
    time.classList.toggle('late', Date.now() - conv.waitingSince > 5 * 60 * 1000);
  } else {
    time.textContent = formatClock(conv.summary.updated_at_ms);
    time.classList.remove('waiting', 'late');
  }
}

function paintCounts() {
  const counts = { waiting: 0, mine: 0, open: 0 };
  const perQueue = new Map();
  for (const conv of state.conversations.values()) {
    const s = conv.summary;
    if (!inScope(s)) continue;
    if (s.status === 'queued') perQueue.set(s.queue, (perQueue.get(s.queue) || 0) + 1);
    if (state.queueFilter && s.queue !== state.queueFilter) continue;
    for (const tab of Object.keys(counts)) if (matchesTab(s, tab)) counts[tab] += 1;
  }
  for (const [tab, n] of Object.entries(counts)) {
    const node = document.querySelector(`[data-count="${tab}"]`);
    node.textContent = String(n);
    node.classList.toggle('hot', tab === 'waiting' && n > 0);
  }
  for (const chip of $('queue-filter').querySelectorAll('[data-queue]')) {
    const n = chip.dataset.queue ? perQueue.get(chip.dataset.queue) || 0 : sum(perQueue.values());
    chip.querySelector('.count').textContent = String(n);
  }
  const waitingAll = sum(perQueue.values());
  document.title = waitingAll > 0 ? `(${waitingAll}) Switchboard console` : 'Switchboard console';
}

function sum(values) {
  let total = 0;
  for (const v of values) total += v;
  return total;
}

function paintQueueFilter() {
  const box = $('queue-filter');
  const chips = [chip('', 'All')];
  for (const name of state.queues) chips.push(chip(name, name));
  box.replaceChildren(...chips);
  if (state.queueFilter && !state.queues.includes(state.queueFilter)) state.queueFilter = null;
  for (const c of chips) c.setAttribute('aria-pressed', String((c.dataset.queue || null) === state.queueFilter));

  function chip(queue, label) {
    const button = el('button', 'chip');
    button.type = 'button';
    button.dataset.queue = queue;
    button.dataset.testid = 'queue-chip';
    button.append(el('span', '', label), el('span', 'count', '0'));
    return button;
  }
}

function paintTeam() {
  const rows = [...state.team.entries()].sort(([a], [b]) => a.localeCompare(b));
  const items = rows.map(([id, info]) => {
    const li = el('li', 'member');
    li.dataset.agent = id;
    li.dataset.available = String(info.available);
    const dot = el('span', `dot ${info.available ? 'dot-on' : 'dot-off'}`);
    const name = el('span', 'member-name', id === state.me.agent ? `${id} (you)` : id);
    const detail = el('small', 'muted', info.available ? `available · ${info.capacity ?? '?'} max` : 'away');
    li.append(dot, name, detail);
    return li;
  });
  if (items.length === 0) items.push(el('li', 'muted', 'No colleagues in your queues yet.'));
  $('team').replaceChildren(...items);
}

// Every second: waiting times tick and typing indicators expire.
function tick() {
  const now = Date.now();
  for (const conv of state.conversations.values()) {
    if (conv.typing && conv.typing.until <= now) {
      conv.typing = null;
      markDirty(conv);
      if (conv.id === state.openId) paintTyping(conv);
    } else if (conv.waitingSince !== null && conv.node?.isConnected) {
      paintItemTime(conv);
    }
  }
  const open = state.conversations.get(state.openId);
  if (open?.summary.status === 'queued') paintStatusPill(open);
}

// ---------------------------------------------------------------------------------------------
// Socket

function socketUrl() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  let url = `${scheme}://${location.host}/ws/console?token=${encodeURIComponent(state.token)}`;
  if (state.lastEventId) url += `&since=${encodeURIComponent(state.lastEventId)}`;
  return url;
}

function connect() {
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

async function setAvailability(available, capacity, { quiet = false } = {}) {
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

// ---------------------------------------------------------------------------------------------
// Notifications for new waiting conversations

let audio = null;
let lastAlert = 0;

function unlockAudio() {
  // Browsers only allow audio after a user gesture: create the context on the sign-in click.
  try {
    audio = audio || new AudioContext();
    if (audio.state === 'suspended') audio.resume();
  } catch {
    audio = null;
  }
}

function beep() {
  if (!audio) return;
  const osc = audio.createOscillator();
  const gain = audio.createGain();
  osc.type = 'sine';
  osc.frequency.value = 880;
  gain.gain.setValueAtTime(0.0001, audio.currentTime);
  gain.gain.exponentialRampToValueAtTime(0.2, audio.currentTime + 0.02);
  gain.gain.exponentialRampToValueAtTime(0.0001, audio.currentTime + 0.25);
  osc.connect(gain).connect(audio.destination);
  osc.start();
  osc.stop(audio.currentTime + 0.3);
}

function notifyWaiting(conv) {
  const now = Date.now();
  if (now - lastAlert < 1500) return; // a burst of arrivals rings once
  lastAlert = now;
  const name = contactName(conv.summary);
  if (document.hidden && 'Notification' in window && Notification.permission === 'granted') {
    const n = new Notification('New conversation waiting', {
      body: `${name} · ${conv.summary.queue} · ${channelLabel(conv.summary)}`,
      tag: conv.id,
    });
    n.onclick = () => {
      window.focus();
      openConversation(conv.id);
    };
  } else {
    beep();
  }
}

// ---------------------------------------------------------------------------------------------
// History and the open chat

/** Timeline item: {key, kind: 'message'|'note'|'system', role, author, text, at, localId,
 *  providerId, delivery, options, pending, failReason}. */
function addItem(conv, item) {
  if (conv.byKey.has(item.key)) return null;
  conv.history.push(item);
  conv.byKey.set(item.key, item);
  if (item.providerId) conv.byProvider.set(item.providerId, item);
  return item;
}

const DELIVERY_RANK = { sent: 1, delivered: 2, read: 3, failed: 4 };

function advanceDelivery(item, next) {
  if (!next) return false;
  if ((DELIVERY_RANK[next] || 0) <= (DELIVERY_RANK[item.delivery] || 0)) return false;
  item.delivery = next;
  return true;
}

async function loadHistory(conv) {
  conv.buffer = [];
  try {
    const path = conversationPath(conv.id);
    const [detail, page] = await Promise.all([
      api(`${path}?messages=${HISTORY_SIZE}`),
      // The message page carries delivery states and times per message; the conversation
      // itself carries notes. Without the page, the conversation's lines are enough.
      api(`${path}/messages?limit=${HISTORY_SIZE}`).catch(() => null),
    ]);
    conv.history = [];
    conv.byKey.clear();
    conv.byProvider.clear();
    conv.windowOpen = detail.service_window_open !== false;
    const providerOf = new Map((detail.deliveries || []).map((d) => [d.local_id, d]));
    if (page) {
      for (const m of page.messages) addItem(conv, messageItem(m, providerOf.get(m.local_id)));
    } else {
      for (const line of detail.messages || []) {
        addItem(conv, { key: `seq:${line.seq}`, kind: 'message', role: line.author.role, author: line.author, text: line.text, at: null, seq: line.seq });
      }
    }
    for (const [i, note] of (detail.notes || []).entries()) {
      addItem(conv, { key: `note:${note.at_ms}:${i}`, kind: 'note', author: note.author, text: note.text, at: note.at_ms });
    }
    conv.history.sort((a, b) => (a.at ?? 0) - (b.at ?? 0) || (a.seq ?? 0) - (b.seq ?? 0));
    for (const ev of conv.buffer) applyToHistory(conv, ev);
  } finally {
    conv.buffer = null;
  }
}

function messageItem(m, delivery) {
  const outbound = m.author.role !== 'customer';
  const item = {
    key: m.local_id ? `out:${m.local_id}` : m.provider_message_id ? `in:${m.provider_message_id}` : `seq:${m.seq}`,
    kind: 'message',
    role: m.author.role,
    author: m.author,
    text: m.text,
    at: m.at_ms,
    seq: m.seq,
    localId: m.local_id,
    providerId: outbound ? delivery?.provider_message_id : m.provider_message_id,
    delivery: outbound ? m.delivery ?? delivery?.state ?? null : null,
    options: m.content?.kind === 'menu' ? m.content.options : null,
  };
  return item;
}

/** Applies one pushed event to a loaded history; paints it when the conversation is open. */
function applyToHistory(conv, ev) {
  const p = ev.payload || {};
  const at = ev.occurred_at;
  let added = null;
  let changed = null;
  switch (ev.type) {
    case 'inbox.message.received':
      added = addItem(conv, { key: `in:${p.provider_id}`, kind: 'message', role: 'customer', author: { role: 'customer' }, text: contentText(p.content), at, providerId: p.provider_id });
      break;
    case 'outbound.message.queued':
      added = addItem(conv, {
        key: `out:${p.local_id}`, kind: 'message', role: p.author?.role || 'system', author: p.author,
        text: contentText(p.content), at, localId: p.local_id, delivery: null,
        options: p.content?.kind === 'menu' ? p.content.options : null,
      });
      if (added) settleGhost(conv, added);
      break;
    case 'outbound.message.sent': {
      const item = conv.byKey.get(`out:${p.local_id}`);
      if (item) {
        item.providerId = p.provider_message_id;
        conv.byProvider.set(p.provider_message_id, item);
        if (advanceDelivery(item, 'sent')) changed = item;
      }
      break;
    }
    case 'inbox.message.status': {
      const item = conv.byProvider.get(p.provider_message_id);
      if (item && advanceDelivery(item, p.state)) changed = item;
      break;
    }
    case 'outbound.message.failed': {
      const item = conv.byKey.get(`out:${p.local_id}`);
      if (item && advanceDelivery(item, 'failed')) {
        item.failReason = p.reason;
        changed = item;
      }
      break;
    }
    case 'conversation.note.added':
      if (!conv.history.some((i) => i.kind === 'note' && i.text === p.body && Math.abs((i.at ?? 0) - at) < 2000)) {
        added = addItem(conv, { key: `note:${ev.event_id}`, kind: 'note', author: p.author, text: p.body, at });
      }
      break;
    default: {
      const text = systemText(ev);
      if (text) added = addItem(conv, { key: `sys:${ev.event_id}`, kind: 'system', text, at });
    }
  }
  if (conv.id !== state.openId) return;
  if (added) appendChatItem(added);
  if (changed) updateChatItem(changed);
}

function systemText(ev) {
  const p = ev.payload || {};
  switch (ev.type) {
    case 'conversation.queued':
      return `Waiting in ${p.queue} (position ${p.position})`;
    case 'conversation.assigned':
      return `Assigned to ${p.agent === state.me.agent ? 'you' : p.agent} (${p.queue})`;
    case 'conversation.transferred':
      return p.target?.queue ? `Transferred to queue ${p.target.queue}` : `Transferred to ${p.target?.agent}`;
    case 'conversation.closed':
      return `Closed by ${authorLabel(p.by).replace(/^You$/, 'you')}`;
    case 'conversation.opened':
      return `Ticket #${p.ticket} opened`;
    default:
      return null;
  }
}

const chat = {
  nodes: new Map(), // item key -> bubble node, for the open conversation
  ghosts: new Map(), // ref -> {text, node}: replies sent, not yet seen as events
};

async function openConversation(id, { reload = false } = {}) {
  const conv = state.conversations.get(id);
  if (!conv) return;
  const previous = state.conversations.get(state.openId);
  state.openId = id;
  if (previous && previous !== conv) {
    markDirty(previous);
    if (!inScope(previous.summary)) drop(previous);
  }
  conv.unread = 0;
  markDirty(conv);
  $('chat').hidden = false;
  $('chat-empty').hidden = true;
  $('chat').dataset.conversationId = id;
  view.chatHeadDirty = true;
  if (previous !== conv || reload) {
    chat.nodes.clear();
    chat.ghosts.clear();
    $('messages').replaceChildren(el('div', 'messages-loading', 'Loading history…'));
  }
  paintTyping(conv);
  if (reload) conv.history = null;
  if (!conv.history) {
    conv.loading = conv.loading || loadHistory(conv).finally(() => (conv.loading = null));
    try {
      await conv.loading;
    } catch (err) {
      if (state.openId === id) showHistoryError(conv, err);
      return;
    }
  }
  if (state.openId !== id) return;
  if (previous !== conv || reload || chat.nodes.size === 0) paintHistory(conv);
  $('reply').focus();
}

function showHistoryError(conv, err) {
  if (err.status === 401) {
    logout('Your token is no longer accepted. Sign in again.');
    return;
  }
  const box = el('div', 'messages-loading');
  const retry = el('button', 'btn', 'Retry');
  retry.type = 'button';
  retry.onclick = () => openConversation(conv.id, { reload: true });
  box.append(el('p', '', `Could not load the history: ${err.message}`), retry);
  $('messages').replaceChildren(box);
}

function paintHistory(conv) {
  const box = $('messages');
  chat.nodes.clear();
  const frag = document.createDocumentFragment();
  if (conv.history.length === 0) frag.append(el('div', 'messages-loading', 'No messages yet.'));
  for (const item of conv.history) frag.append(chatNode(item));
  for (const ghost of chat.ghosts.values()) frag.append(ghost.node);
  box.replaceChildren(frag);
  box.scrollTop = box.scrollHeight;
  $('window-banner').hidden = conv.windowOpen || channelKind(conv.summary) !== 'whatsapp';
}

function nearBottom(box) {
  return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
}

function appendChatItem(item) {
  const box = $('messages');
  const stick = nearBottom(box);
  box.querySelector('.messages-loading')?.remove();
  const node = chatNode(item);
  // Real messages go above replies still on their way.
  const firstGhost = chat.ghosts.values().next().value?.node;
  if (firstGhost?.isConnected) box.insertBefore(node, firstGhost);
  else box.append(node);
  if (stick || item.author?.id === state.me.agent) box.scrollTop = box.scrollHeight;
}

function updateChatItem(item) {
  const node = chat.nodes.get(item.key);
  if (!node) return;
  const ticks = node.querySelector('.ticks');
  if (ticks) paintTicks(ticks, item);
}

function chatNode(item) {
  if (item.kind === 'system') {
    const node = el('div', 'sysline');
    node.dataset.testid = 'system-line';
    node.append(el('span', '', item.text), el('time', '', formatClock(item.at)));
    chat.nodes.set(item.key, node);
    return node;
  }
  const isNote = item.kind === 'note';
  const outbound = isNote || item.role !== 'customer';
  const node = el('div', `msg ${isNote ? 'msg-note' : outbound ? 'msg-out' : 'msg-in'} role-${item.role || 'note'}`);
  node.dataset.testid = isNote ? 'note-bubble' : 'message-bubble';
  node.dataset.role = isNote ? 'note' : item.role;
  node.dataset.key = item.key;
  if (item.pending) node.classList.add('pending');
  if (isNote) node.append(el('div', 'msg-author', `Internal note · ${authorLabel(item.author)}`));
  else if (outbound) node.append(el('div', 'msg-author', authorLabel(item.author)));
  node.append(el('div', 'msg-text', menuText(item.text, item.options)));
  if (item.options?.length) {
    const opts = el('div', 'msg-options');
    for (const o of item.options) opts.append(el('span', 'opt', o.title));
    node.append(opts);
  }
  const meta = el('div', 'msg-meta');
  meta.append(el('time', '', item.pending ? 'sending…' : formatClock(item.at)));
  if (outbound && !isNote) {
    const ticks = el('span', 'ticks');
    ticks.dataset.testid = 'delivery';
    paintTicks(ticks, item);
    meta.append(ticks);
  }
  node.append(meta);
  chat.nodes.set(item.key, node);
  return node;
}

function paintTicks(node, item) {
  const marks = { sent: '✓', delivered: '✓✓', read: '✓✓', failed: '✗' };
  const titles = { sent: 'Sent', delivered: 'Delivered', read: 'Read', failed: 'Not delivered' };
  const s = item.delivery;
  node.dataset.state = s || 'queued';
  node.textContent = s ? marks[s] : '◷';
  node.title = s === 'failed' && item.failReason ? `Not delivered: ${item.failReason}` : titles[s] || 'Queued';
}

function paintTyping(conv) {
  const line = $('typing');
  const t = conv.typing;
  line.hidden = !t;
  if (t) line.textContent = t.who === 'customer' ? `${contactName(conv.summary)} is typing…` : `${t.agent || 'An agent'} is typing…`;
}

function canReply(s) {
  if (s.status === 'closed') return false;
  if (isAdmin()) return true;
  return s.status === 'assigned' && s.agent === state.me.agent;
}

function paintStatusPill(conv) {
  const s = conv.summary;
  const pill = $('chat-status');
  pill.dataset.status = s.status;
  if (s.status === 'queued') {
    const wait = conv.waitingSince !== null ? ` · ${formatWait(Date.now() - conv.waitingSince)}` : '';
    pill.textContent = `Waiting in ${s.queue}${wait}`;
  } else if (s.status === 'assigned') {
    pill.textContent = s.agent === state.me.agent ? 'Assigned to you' : `Assigned to ${s.agent}`;
  } else {
    pill.textContent = { closed: 'Closed', bot: 'With the AI', triage: 'In triage' }[s.status] || s.status;
  }
}

function paintChatHead() {
  const conv = state.conversations.get(state.openId);
  if (!conv) return;
  const s = conv.summary;
  const name = contactName(s);
  paintAvatar($('chat-avatar'), name, s.id, channelInitials(s));
  $('chat-name').textContent = name;
  const meta = [channelLabel(s), contactDetail(s), s.queue && `queue ${s.queue}`, s.ticket && `ticket #${s.ticket}`];
  $('chat-meta').textContent = meta.filter(Boolean).join(' · ');
  paintStatusPill(conv);
  $('accept').hidden = s.status !== 'queued';
  $('transfer').hidden = s.status !== 'queued' && s.status !== 'assigned';
  $('close').hidden = s.status === 'closed';
  const reply = canReply(s);
  const composer = $('composer');
  composer.dataset.canReply = String(reply);
  paintComposer();
}

function paintComposer() {
  const composer = $('composer');
  const conv = state.conversations.get(state.openId);
  const mode = composer.dataset.mode;
  const blocked = mode === 'reply' && conv && !canReply(conv.summary);
  const input = $('reply');
  input.disabled = blocked;
  $('send').disabled = blocked;
  input.placeholder = blocked
    ? conv.summary.status === 'queued' ? 'Accept the conversation to reply.' : 'You cannot reply to this conversation.'
    : mode === 'note' ? 'Internal note: only the team sees it…' : 'Write a reply… (Enter sends, Shift+Enter for a new line)';
  for (const b of composer.querySelectorAll('.mode')) b.setAttribute('aria-pressed', String(b.dataset.mode === mode));
}

// ---------------------------------------------------------------------------------------------
// Actions

async function accept() {
  const id = state.openId;
  const button = $('accept');
  button.disabled = true;
  const ack = await act('accept', { conversation_id: id }, 'Accept');
  button.disabled = false;
  if (!ack) return;
  if (ack.conversation) upsert(ack.conversation);
  toast('Conversation accepted', 'ok');
  selectTab('mine');
  $('reply').focus();
}

async function closeConversation() {
  const id = state.openId;
  const ack = await act('close', { conversation_id: id }, 'Close');
  if (!ack) return;
  if (ack.conversation) upsert(ack.conversation);
  toast('Conversation closed', 'ok');
}

function openTransferMenu() {
  const conv = state.conversations.get(state.openId);
  if (!conv) return;
  const select = $('transfer-target');
  const queues = el('optgroup');
  queues.label = 'Queues';
  for (const q of state.queues) {
    if (q === conv.summary.queue && conv.summary.status === 'queued') continue;
    const opt = el('option', '', q);
    opt.value = `queue:${q}`;
    queues.append(opt);
  }
  const agents = el('optgroup');
  agents.label = 'Agents';
  for (const [id, info] of state.team) {
    if (id === state.me.agent || id === conv.summary.agent) continue;
    const opt = el('option', '', info.available ? id : `${id} (away)`);
    opt.value = `agent:${id}`;
    agents.append(opt);
  }
  select.replaceChildren(...[queues, agents].filter((g) => g.children.length > 0));
  $('transfer-menu').hidden = false;
  $('transfer').setAttribute('aria-expanded', 'true');
  select.focus();
}

function closeTransferMenu() {
  $('transfer-menu').hidden = true;
  $('transfer').setAttribute('aria-expanded', 'false');
}

async function transfer(event) {
  event.preventDefault();
  const value = $('transfer-target').value;
  if (!value) return;
  const [kind, target] = [value.slice(0, value.indexOf(':')), value.slice(value.indexOf(':') + 1)];
  closeTransferMenu();
  const ack = await act('transfer', { conversation_id: state.openId, [kind]: target }, 'Transfer');
  if (!ack) return;
  if (ack.conversation) upsert(ack.conversation);
  toast(`Transferred to ${kind === 'queue' ? `queue ${target}` : target}`, 'ok');
}

async function send(event) {
  event?.preventDefault();
  const input = $('reply');
  const text = input.value.trim();
  const id = state.openId;
  if (!text || !id || input.disabled) return;
  const mode = $('composer').dataset.mode;
  input.value = '';
  autosize();
  stopTyping();
  if (mode === 'note') {
    const ack = await act('note', { conversation_id: id, text }, 'Note');
    if (!ack && !input.value) input.value = text;
    return;
  }
  const ghost = addGhost(text);
  try {
    await command('reply', { conversation_id: id, text });
  } catch (err) {
    removeGhost(ghost);
    if (!input.value && state.openId === id) input.value = text; // nothing typed is lost
    toast(`Reply not sent: ${errorText(err)}`);
  }
}

// A reply shows at once as a pending bubble; the `outbound.message.queued` event replaces it.
let ghostSeq = 0;

function addGhost(text) {
  const key = `ghost:${++ghostSeq}`;
  const item = { key, kind: 'message', role: 'agent', author: { role: 'agent', id: state.me.agent }, text, pending: true };
  const node = chatNode(item);
  const box = $('messages');
  box.querySelector('.messages-loading')?.remove();
  box.append(node);
  box.scrollTop = box.scrollHeight;
  const ghost = { key, text, node };
  chat.ghosts.set(key, ghost);
  // If the event never comes (e.g. seen before the history finished loading), do not linger.
  ghost.timer = setTimeout(() => removeGhost(ghost), 10000);
  return ghost;
}

function removeGhost(ghost) {
  clearTimeout(ghost.timer);
  chat.ghosts.delete(ghost.key);
  chat.nodes.delete(ghost.key);
  ghost.node.remove();
}

function settleGhost(conv, item) {
  if (conv.id !== state.openId || item.author?.id !== state.me.agent) return;
  for (const ghost of chat.ghosts.values()) {
    if (ghost.text === item.text) {
      removeGhost(ghost);
      return;
    }
  }
}

// Typing: `typing on` at most every few seconds while keys arrive, `off` after a pause.
const typing = { target: null, lastSent: 0, idle: 0 };

function onComposerInput() {
  autosize();
  const id = state.openId;
  const conv = state.conversations.get(id);
  if (!conv || $('composer').dataset.mode !== 'reply' || !canReply(conv.summary)) return;
  const now = Date.now();
  if (typing.target !== id || now - typing.lastSent > TYPING_RENEW_MS) {
    if (typing.target && typing.target !== id) sendTyping(typing.target, false);
    typing.target = id;
    typing.lastSent = now;
    sendTyping(id, true);
  }
  clearTimeout(typing.idle);
  typing.idle = setTimeout(stopTyping, TYPING_IDLE_MS);
}

function stopTyping() {
  clearTimeout(typing.idle);
  if (!typing.target) return;
  sendTyping(typing.target, false);
  typing.target = null;
  typing.lastSent = 0;
}

function sendTyping(conversationId, on) {
  // An indicator is best effort: a failure is logged, never shown as a toast.
  command('typing', { conversation_id: conversationId, on }).catch((err) => console.debug('typing', err.code));
}

function autosize() {
  const input = $('reply');
  input.style.height = 'auto';
  input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
}

function selectTab(tab) {
  state.tab = tab;
  for (const b of document.querySelectorAll('.tab')) b.setAttribute('aria-selected', String(b.dataset.tab === tab));
  view.listDirty = true;
  view.revealOpen = true;
  scheduleRender();
}

/** After a tab or filter change: the list starts at the top, or at the open conversation. */
function revealOpenItem() {
  const list = $('conversation-list');
  const node = state.conversations.get(state.openId)?.node;
  if (node?.isConnected) node.scrollIntoView({ block: 'nearest' });
  else list.scrollTop = 0;
}

// ---------------------------------------------------------------------------------------------
// Sign-in

async function signIn(token, { fromStorage = false } = {}) {
  const error = $('login-error');
  error.hidden = true;
  $('login-button').disabled = true;
  try {
    state.me = await api('/api/me', token);
  } catch (err) {
    $('login-button').disabled = false;
    showLogin();
    if (err.status === 401) {
      error.textContent = fromStorage ? 'Your session has expired: sign in again.' : 'That token was not accepted (401). Check it and try again.';
    } else {
      error.textContent = `Cannot sign in: ${err.message}`;
    }
    error.hidden = false;
    if (fromStorage) sessionStorage.removeItem(TOKEN_KEY);
    return;
  }
  $('login-button').disabled = false;
  state.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  startConsole();
}

function showLogin() {
  $('app').hidden = true;
  $('login').hidden = false;
  $('login-token').focus();
}

function startConsole() {
  $('login').hidden = true;
  $('app').hidden = false;
  const me = state.me;
  paintAvatar($('me-avatar'), me.agent, me.agent);
  $('me-name').textContent = me.agent;
  $('me-role').textContent = `${me.role} · ${me.tenant}`;
  state.queues = [...me.queues];
  paintQueueFilter();
  view.listDirty = true;
  view.teamDirty = true;
  scheduleRender();
  connect();
}

function logout(message) {
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

// ---------------------------------------------------------------------------------------------
// Wiring

function wire() {
  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    unlockAudio();
    if ('Notification' in window && Notification.permission === 'default') {
      Notification.requestPermission().catch(() => {});
    }
    const token = $('login-token').value.trim();
    if (token) signIn(token);
  });
  $('logout').addEventListener('click', () => logout());
  $('availability').addEventListener('change', (e) => {
    const capacity = clampCapacity($('capacity').value);
    setAvailability(e.target.checked, capacity);
  });
  $('capacity').addEventListener('change', () => {
    const capacity = clampCapacity($('capacity').value);
    $('capacity').value = String(capacity);
    setAvailability(state.availability.available, capacity);
  });
  for (const tab of document.querySelectorAll('.tab')) tab.addEventListener('click', () => selectTab(tab.dataset.tab));
  $('queue-filter').addEventListener('click', (e) => {
    const chip = e.target.closest('[data-queue]');
    if (!chip) return;
    state.queueFilter = chip.dataset.queue || null;
    for (const c of $('queue-filter').querySelectorAll('[data-queue]')) {
      c.setAttribute('aria-pressed', String((c.dataset.queue || null) === state.queueFilter));
    }
    view.listDirty = true;
    view.revealOpen = true;
    scheduleRender();
  });
  const list = $('conversation-list');
  list.addEventListener('click', (e) => {
    const item = e.target.closest('[data-conversation-id]');
    if (item) openConversation(item.dataset.conversationId);
  });
  list.addEventListener('keydown', (e) => {
    const item = e.target.closest('[data-conversation-id]');
    if (item && (e.key === 'Enter' || e.key === ' ')) {
      e.preventDefault();
      openConversation(item.dataset.conversationId);
    }
  });
  $('accept').addEventListener('click', accept);
  $('close').addEventListener('click', closeConversation);
  $('transfer').addEventListener('click', () => ($('transfer-menu').hidden ? openTransferMenu() : closeTransferMenu()));
  $('transfer-cancel').addEventListener('click', closeTransferMenu);
  $('transfer-menu').addEventListener('submit', transfer);
  $('composer').addEventListener('submit', send);
  $('reply').addEventListener('input', onComposerInput);
  $('reply').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  for (const b of document.querySelectorAll('.mode')) {
    b.addEventListener('click', () => {
      $('composer').dataset.mode = b.dataset.mode;
      $('composer').classList.toggle('note-mode', b.dataset.mode === 'note');
      paintComposer();
      $('reply').focus();
    });
  }
  document.addEventListener('visibilitychange', () => {
    // Coming back to the tab reads the open conversation.
    const conv = state.conversations.get(state.openId);
    if (!document.hidden && conv?.unread) {
      conv.unread = 0;
      markDirty(conv);
    }
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') closeTransferMenu();
  });
  setInterval(tick, 1000);
}

function clampCapacity(value) {
  const n = Math.round(Number(value));
  return Number.isFinite(n) ? Math.min(100, Math.max(1, n)) : state.availability.capacity;
}

function main() {
  wire();
  const notice = sessionStorage.getItem('switchboard.console.notice');
  sessionStorage.removeItem('switchboard.console.notice');
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) {
    signIn(token, { fromStorage: true });
    return;
  }
  showLogin();
  if (notice) {
    $('login-error').textContent = notice;
    $('login-error').hidden = false;
  }
}

main();
