// The conversation list (tabs, queue filter chips, counts) and the team panel.

import { authorLabel, inScope, scheduleRender, state, view } from './console-store.js';
import {
  $,
  channelInitials,
  channelKind,
  channelLabel,
  contactDetail,
  contactName,
  el,
  formatClock,
  formatWait,
  paintAvatar,
  sum,
} from './console-util.js';

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
export function reorderList() {
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

export function paintItem(conv) {
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
  // The number too, when the name took the title line.
  const detail = contactDetail(s);
  if (detail && s.contact?.name) tags.push(el('span', 'conv-number', detail));
  p.tags.replaceChildren(...tags);
}

export function paintItemTime(conv) {
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

export function paintCounts() {
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

export function paintQueueFilter() {
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

export function paintTeam() {
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

export function selectTab(tab) {
  state.tab = tab;
  for (const b of document.querySelectorAll('.tab')) b.setAttribute('aria-selected', String(b.dataset.tab === tab));
  view.listDirty = true;
  view.revealOpen = true;
  scheduleRender();
}

/** After a tab or filter change: the list starts at the top, or at the open conversation. */
export function revealOpenItem() {
  const list = $('conversation-list');
  const node = state.conversations.get(state.openId)?.node;
  if (node?.isConnected) node.scrollIntoView({ block: 'nearest' });
  else list.scrollTop = 0;
}
