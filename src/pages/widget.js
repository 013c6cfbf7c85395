// Switchboard web chat for customers: one WebSocket (/ws/widget, docs/console-protocol.md).
//
// The visitor id in localStorage is the customer's key: the same id gets the same conversation
// back after a reload (the server replays it in `welcome`). Messages not yet acknowledged are
// kept in localStorage too and resent with the same client_id after a reconnect, which the hub
// accepts once.

import { menuText } from './menu-text.js';

const params = new URLSearchParams(location.search);
const TENANT = params.get('tenant') || 'demo';
const VISITOR_KEY = `switchboard.visitor.${TENANT}`;
const NAME_KEY = `switchboard.visitor.${TENANT}.name`;
const OUTBOX_KEY = `switchboard.outbox.${TENANT}`;
const TYPING_TTL_MS = 6000; // a `typing on` is valid for 6 s unless renewed
const TYPING_RENEW_MS = 3000;
const TYPING_IDLE_MS = 4000;
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000, 30000];

const $ = (id) => document.getElementById(id);

const state = {
  ws: null,
  connected: false,
  attempts: 0,
  timer: 0,
  visitor: visitorId(),
  name: localStorage.getItem(NAME_KEY) || '',
  outbox: loadOutbox(), // client_id -> {client_id, type, text, id?, title?}
  nodes: new Map(), // client_id -> bubble of a message we sent
  seen: new Set(), // ids of business messages already shown
  typingTimer: 0,
  unread: 0,
};

// ---------------------------------------------------------------------------------------------
// Ids and storage

function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  // randomUUID needs a secure context; a plain-http page on a LAN address still gets one.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function visitorId() {
  let id = localStorage.getItem(VISITOR_KEY);
  if (!id || !/^[A-Za-z0-9_-]{8,64}$/.test(id)) {
    id = uuid();
    localStorage.setItem(VISITOR_KEY, id);
  }
  return id;
}

function loadOutbox() {
  try {
    const list = JSON.parse(localStorage.getItem(OUTBOX_KEY) || '[]');
    return new Map(list.map((m) => [m.client_id, m]));
  } catch {
    return new Map();
  }
}

function saveOutbox() {
  localStorage.setItem(OUTBOX_KEY, JSON.stringify([...state.outbox.values()]));
}

// ---------------------------------------------------------------------------------------------
// Rendering

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function clock(date = new Date()) {
  return date.toLocaleTimeString('pt-BR', { hour: '2-digit', minute: '2-digit' });
}

function scrollDown() {
  const log = $('log');
  log.scrollTop = log.scrollHeight;
}

/** A bubble; `status` is set on the customer's own messages (pending, sent, failed). */
function bubble(from, text, { time = null, status = null } = {}) {
  const node = el('div', `bubble from-${from === 'customer' ? 'customer' : 'business'}`);
  node.dataset.testid = 'widget-message';
  node.dataset.from = from;
  node.append(el('div', 'text', text));
  const meta = el('div', 'meta');
  if (time) meta.append(el('time', '', time));
  if (status) {
    node.dataset.status = status;
    meta.append(el('span', 'state'));
  }
  node.append(meta);
  paintStatus(node);
  return node;
}

function paintStatus(node) {
  const mark = node.querySelector('.state');
  if (!mark) return;
  const labels = { pending: '◷', sent: '✓', failed: '!' };
  const titles = { pending: 'Enviando…', sent: 'Enviada', failed: 'Não enviada' };
  mark.textContent = labels[node.dataset.status] || '';
  mark.title = titles[node.dataset.status] || '';
}

function append(node) {
  $('log').querySelector('.empty')?.remove();
  $('log').append(node);
  scrollDown();
}

function optionButtons(options) {
  const box = el('div', 'options');
  box.dataset.testid = 'widget-options';
  for (const option of options) {
    const button = el('button', 'option', option.title);
    button.type = 'button';
    button.dataset.testid = 'option-button';
    button.dataset.optionId = option.id;
    button.addEventListener('click', () => choose(option, box, button));
    box.append(button);
  }
  return box;
}

function notice(text, kind = 'info') {
  const node = el('div', `notice notice-${kind}`, text);
  node.dataset.testid = 'widget-notice';
  append(node);
}

// ---------------------------------------------------------------------------------------------
// Frames from the hub

function onWelcome(frame) {
  $('widget').dataset.conversationId = frame.conversation_id;
  if (frame.title) {
    $('title').textContent = frame.title;
    document.title = `${frame.title} · Atendimento`;
    $('widget').querySelector('.widget-avatar').textContent = initials(frame.title);
  }
  // The history is the server's word: draw it again from scratch on every (re)connection.
  const log = $('log');
  log.replaceChildren();
  state.nodes.clear();
  state.seen.clear();
  const messages = frame.messages || [];
  for (const m of messages) {
    const node = bubble(m.from, menuText(m.text, m.options));
    if (m.from !== 'customer' && m.options?.length) node.append(optionButtons(m.options));
    log.append(node);
  }
  if (messages.length === 0) log.append(el('div', 'empty', 'Olá! Escreva sua mensagem e responderemos por aqui.'));
  // Messages the hub never acknowledged: shown as pending and sent again with the same
  // client_id. One the hub did take (only its ack was lost) is already in the history: not
  // drawn twice.
  const recent = new Set(messages.filter((m) => m.from === 'customer').slice(-10).map((m) => m.text));
  for (const entry of state.outbox.values()) {
    if (!recent.has(entry.text)) {
      const node = bubble('customer', entry.text, { status: 'pending' });
      state.nodes.set(entry.client_id, node);
      log.append(node);
    }
    transmit(entry);
  }
  scrollDown();
}

function onMessage(frame) {
  if (frame.id) {
    if (state.seen.has(frame.id)) return;
    state.seen.add(frame.id);
  }
  const node = bubble(frame.from || 'business', menuText(frame.text || '', frame.options), { time: clock() });
  if (frame.options?.length) node.append(optionButtons(frame.options));
  append(node);
  if (frame.from !== 'customer') {
    setBusinessTyping(false);
    if ($('widget').hidden) {
      state.unread += 1;
      $('launcher-badge').textContent = String(state.unread);
      $('launcher-badge').hidden = false;
    }
  }
}

function onAck(frame) {
  state.outbox.delete(frame.client_id);
  saveOutbox();
  const node = state.nodes.get(frame.client_id);
  if (node) {
    node.dataset.status = 'sent';
    paintStatus(node);
  }
}

function onError(frame) {
  if (!frame.client_id) {
    notice(frame.message || 'Algo deu errado.', 'error');
    return;
  }
  const entry = state.outbox.get(frame.client_id);
  state.outbox.delete(frame.client_id);
  saveOutbox();
  const node = state.nodes.get(frame.client_id);
  if (!node) return;
  node.dataset.status = 'failed';
  paintStatus(node);
  const why = el('div', 'failed-why', `Não enviada${frame.message ? `: ${frame.message}` : ''}. `);
  if (entry) {
    const retry = el('button', 'link-btn', 'Tentar de novo');
    retry.type = 'button';
    retry.dataset.testid = 'widget-retry';
    retry.addEventListener('click', () => {
      node.remove();
      submit({ ...entry, client_id: uuid() }); // refused once: a new id, not a duplicate
    });
    why.append(retry);
  }
  node.append(why);
}

function onFrame(frame) {
  switch (frame.type) {
    case 'welcome':
      return onWelcome(frame);
    case 'message':
      return onMessage(frame);
    case 'ack':
      return onAck(frame);
    case 'error':
      return onError(frame);
    case 'typing':
      return setBusinessTyping(Boolean(frame.on));
    default:
      return; // newer frame types: ignore
  }
}

function setBusinessTyping(on) {
  clearTimeout(state.typingTimer);
  $('typing').hidden = !on;
  if (on) {
    state.typingTimer = setTimeout(() => ($('typing').hidden = true), TYPING_TTL_MS);
    scrollDown();
  }
}

// ---------------------------------------------------------------------------------------------
// Sending

function transmit(entry) {
  if (!state.connected) return; // sent on the next welcome
  const frame = entry.type === 'choice'
    ? { type: 'choice', client_id: entry.client_id, id: entry.id, title: entry.title }
    : { type: 'message', client_id: entry.client_id, text: entry.text };
  state.ws.send(JSON.stringify(frame));
}

function submit(entry) {
  state.outbox.set(entry.client_id, entry);
  saveOutbox();
  const node = bubble('customer', entry.text, { time: clock(), status: 'pending' });
  state.nodes.set(entry.client_id, node);
  append(node);
  stopTyping();
  transmit(entry);
}

function sendText(event) {
  event.preventDefault();
  const input = $('input');
  const text = input.value.trim();
  if (!text) return;
  input.value = '';
  submit({ client_id: uuid(), type: 'message', text });
  input.focus();
}

function choose(option, box, button) {
  // One answer per menu.
  for (const b of box.querySelectorAll('button')) b.disabled = true;
  button.classList.add('chosen');
  submit({ client_id: uuid(), type: 'choice', id: option.id, title: option.title, text: option.title });
}

// Our own typing: `on` at most every few seconds while keys arrive, `off` after a pause.
const typing = { on: false, lastSent: 0, idle: 0 };

function onInput() {
  const now = Date.now();
  if (state.connected && now - typing.lastSent > TYPING_RENEW_MS) {
    typing.on = true;
    typing.lastSent = now;
    state.ws.send(JSON.stringify({ type: 'typing', on: true }));
  }
  clearTimeout(typing.idle);
  typing.idle = setTimeout(stopTyping, TYPING_IDLE_MS);
}

function stopTyping() {
  clearTimeout(typing.idle);
  if (!typing.on) return;
  typing.on = false;
  typing.lastSent = 0;
  if (state.connected) state.ws.send(JSON.stringify({ type: 'typing', on: false }));
}

// ---------------------------------------------------------------------------------------------
// Connection

function socketUrl() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const q = new URLSearchParams({ tenant: TENANT, visitor: state.visitor });
  if (state.name) q.set('name', state.name);
  return `${scheme}://${location.host}/ws/widget?${q}`;
}

function setState(kind) {
  $('widget').dataset.state = kind;
  const text = {
    open: 'Online',
    connecting: 'Conectando…',
    offline: state.attempts > 3 ? 'Chat indisponível no momento; tentando de novo…' : 'Reconectando…',
  };
  $('status').textContent = text[kind];
}

function connect() {
  clearTimeout(state.timer);
  setState('connecting');
  const ws = new WebSocket(socketUrl());
  state.ws = ws;
  ws.onopen = () => {
    if (state.ws !== ws) return;
    state.connected = true;
    state.attempts = 0;
    setState('open');
  };
  ws.onmessage = (msg) => {
    let frame;
    try {
      frame = JSON.parse(msg.data);
    } catch {
      return;
    }
    onFrame(frame);
  };
  ws.onclose = () => {
    if (state.ws !== ws) return;
    state.connected = false;
    typing.on = false;
    const base = BACKOFF_MS[Math.min(state.attempts, BACKOFF_MS.length - 1)];
    state.attempts += 1;
    setState('offline');
    // Jitter, so a restarted hub is not hit by every visitor in the same instant.
    state.timer = setTimeout(connect, base / 2 + Math.random() * base);
  };
}

function reconnectNow() {
  const old = state.ws;
  state.ws = null;
  state.connected = false;
  old?.close();
  state.attempts = 0;
  connect();
}

function initials(title) {
  const words = title.trim().split(/\s+/).filter(Boolean);
  return words.slice(0, 2).map((w) => w[0].toUpperCase()).join('') || 'LD';
}

// ---------------------------------------------------------------------------------------------
// Wiring

/** Inside an iframe (or with ?embed=1) the page is only the chat: the host page is the shop. */
function embedded() {
  if (params.get('embed') === '1') return true;
  try {
    return window.self !== window.top;
  } catch {
    return true; // a cross-origin parent: certainly framed
  }
}

function main() {
  if (embedded()) document.body.classList.add('embedded');
  $('composer').addEventListener('submit', sendText);
  $('input').addEventListener('input', onInput);
  $('name').value = state.name;
  $('name-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const name = $('name').value.trim().slice(0, 80);
    if (name === state.name) return;
    state.name = name;
    if (name) localStorage.setItem(NAME_KEY, name);
    else localStorage.removeItem(NAME_KEY);
    notice(name ? `Certo, ${name}!` : 'Nome removido.');
    reconnectNow(); // the name travels on the connection
  });
  $('minimize').addEventListener('click', () => {
    $('widget').hidden = true;
    $('launcher').hidden = false;
  });
  $('launcher').addEventListener('click', () => {
    $('widget').hidden = false;
    $('launcher').hidden = true;
    state.unread = 0;
    $('launcher-badge').hidden = true;
    scrollDown();
    $('input').focus();
  });
  connect();
  $('input').focus();
}

main();
