// Switchboard agent console: one page, one WebSocket (/ws/console, docs/console-protocol.md),
// REST only for a conversation's history (GET /api/conversations/{id}).
//
// Performance model (hundreds of open conversations): conversations live in one Map; every
// change marks the conversation dirty and one requestAnimationFrame pass patches only the dirty
// list items, then re-sorts the visible list by moving existing nodes. History is fetched once
// per conversation and then kept current from the pushed events.
//
// The entry module; the rest is split by concern (all served flat under /assets/):
//   console-util.js     DOM and formatting helpers, toasts
//   console-store.js    page state, conversation records, dirty marks
//   console-api.js      REST, commands over the socket, sign-out
//   console-list.js     conversation list, counts, queue filter, team
//   console-chat.js     the open conversation: history, bubbles, ticks, typing line, header
//   console-actions.js  accept, transfer, close, reply, note, typing sent
//   console-notify.js   alerts for new waiting conversations
//   console-socket.js   the WebSocket, frame dispatch, availability
// This module holds the render pass and the once-a-second tick (they touch both the list and
// the chat), sign-in and the event wiring.

import {
  accept,
  closeConversation,
  closeTransferMenu,
  onComposerInput,
  openTransferMenu,
  send,
  transfer,
} from './console-actions.js';
import { TOKEN_KEY, api, logout } from './console-api.js';
import { openConversation, paintChatHead, paintComposer, paintStatusPill, paintTyping } from './console-chat.js';
import {
  paintCounts,
  paintItem,
  paintItemTime,
  paintQueueFilter,
  paintTeam,
  reorderList,
  revealOpenItem,
  selectTab,
} from './console-list.js';
import { unlockAudio } from './console-notify.js';
import { connect, setAvailability } from './console-socket.js';
import { markDirty, scheduleRender, setRenderer, state, view } from './console-store.js';
import { $, paintAvatar } from './console-util.js';

// ---------------------------------------------------------------------------------------------
// Rendering: dirty sets flushed once per animation frame.

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
  document.addEventListener('click', (e) => {
    if (!$('transfer-menu').hidden && !e.target.closest('.transfer-wrap')) closeTransferMenu();
  });
  setInterval(tick, 1000);
}

function clampCapacity(value) {
  const n = Math.round(Number(value));
  return Number.isFinite(n) ? Math.min(100, Math.max(1, n)) : state.availability.capacity;
}

function main() {
  setRenderer(render);
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
