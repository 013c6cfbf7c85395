// Small helpers for the agent console, with no state of their own: building DOM nodes, how
// channels, contacts, times and message contents read, and toasts.

export const $ = (id) => document.getElementById(id);

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export function channelKind(summary) {
  const channel = summary.channel || summary.id.split(':')[1] || '';
  return channel.split('.')[0];
}

const CHANNEL_LABELS = { whatsapp: 'WhatsApp', telegram: 'Telegram', webchat: 'Web chat' };

export function channelLabel(summary) {
  const kind = channelKind(summary);
  return CHANNEL_LABELS[kind] || kind || 'Unknown';
}

function formatPhone(key) {
  // Brazilian numbers read better grouped: +55 11 98765-4321.
  const m = /^55(\d{2})(\d{4,5})(\d{4})$/.exec(key);
  return m ? `+55 ${m[1]} ${m[2]}-${m[3]}` : `+${key}`;
}

export function channelInitials(summary) {
  return { whatsapp: 'WA', telegram: 'TG', webchat: 'WC' }[channelKind(summary)] || '#';
}

export function contactName(summary) {
  const contact = summary.contact;
  if (contact?.name) return contact.name;
  const kind = channelKind(summary);
  // A web-chat contact key is the visitor's secret id: never shown.
  if (kind === 'webchat') return 'Web visitor';
  const key = contact?.key || summary.id.split(':').pop();
  if (kind === 'whatsapp') return formatPhone(key);
  return `${CHANNEL_LABELS[kind] || kind} ${key}`;
}

export function contactDetail(summary) {
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

export function paintAvatar(node, name, seed, fallback) {
  // A name without letters (a phone number) makes poor initials: use the channel's.
  node.textContent = /\p{L}/u.test(name) || !fallback ? initials(name) : fallback;
  node.style.setProperty('--h', hue(seed || name));
}

export function formatWait(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

export function formatClock(ms) {
  if (!ms) return '';
  const date = new Date(ms);
  const today = new Date();
  const time = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return date.toDateString() === today.toDateString()
    ? time
    : `${date.toLocaleDateString([], { day: '2-digit', month: '2-digit' })} ${time}`;
}

export function contentText(content) {
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

// ---------------------------------------------------------------------------------------------
// Toasts

export function toast(message, kind = 'error') {
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

export function errorText(err) {
  return ERROR_TEXT[err.code] || err.message || err.code || 'Something went wrong.';
}

export function sum(values) {
  let total = 0;
  for (const v of values) total += v;
  return total;
}
