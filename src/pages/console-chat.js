// The open conversation: its history (loaded once, then kept current from pushed events), the
// bubbles with their delivery ticks, the typing line, the header and the composer's state.

import { api, conversationPath, logout } from './console-api.js';
import { authorLabel, drop, inScope, isAdmin, markDirty, state, view } from './console-store.js';
import {
  $,
  channelInitials,
  channelKind,
  channelLabel,
  contactDetail,
  contactName,
  contentText,
  el,
  formatClock,
  formatWait,
  paintAvatar,
} from './console-util.js';
import { menuText } from './menu-text.js';

const HISTORY_SIZE = 50;

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
export function applyToHistory(conv, ev) {
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

export async function openConversation(id, { reload = false } = {}) {
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

export function paintTyping(conv) {
  const line = $('typing');
  const t = conv.typing;
  line.hidden = !t;
  if (t) line.textContent = t.who === 'customer' ? `${contactName(conv.summary)} is typing…` : `${t.agent || 'An agent'} is typing…`;
}

export function canReply(s) {
  if (s.status === 'closed') return false;
  if (isAdmin()) return true;
  return s.status === 'assigned' && s.agent === state.me.agent;
}

export function paintStatusPill(conv) {
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

export function paintChatHead() {
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

export function paintComposer() {
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

// A reply shows at once as a pending bubble; the `outbound.message.queued` event replaces it.
let ghostSeq = 0;

export function addGhost(text) {
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

export function removeGhost(ghost) {
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
