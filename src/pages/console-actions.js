// What the agent does to the open conversation: accept, transfer, close, reply or note, and the
// typing indicator sent while composing.

import { act, command } from './console-api.js';
import { addGhost, canReply, removeGhost } from './console-chat.js';
import { selectTab } from './console-list.js';
import { state, upsert } from './console-store.js';
import { $, el, errorText, toast } from './console-util.js';

const TYPING_RENEW_MS = 3000; // how often we re-send `typing on` while the agent keeps typing
const TYPING_IDLE_MS = 4000; // silence after which we send `typing off`

export async function accept() {
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

export async function closeConversation() {
  const id = state.openId;
  const ack = await act('close', { conversation_id: id }, 'Close');
  if (!ack) return;
  if (ack.conversation) upsert(ack.conversation);
  toast('Conversation closed', 'ok');
}

export function openTransferMenu() {
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

export function closeTransferMenu() {
  $('transfer-menu').hidden = true;
  $('transfer').setAttribute('aria-expanded', 'false');
}

export async function transfer(event) {
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

export async function send(event) {
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

// Typing: `typing on` at most every few seconds while keys arrive, `off` after a pause.
const typing = { target: null, lastSent: 0, idle: 0 };

export function onComposerInput() {
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
