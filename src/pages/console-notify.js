// Notifications for new waiting conversations: a desktop notification when the tab is hidden,
// else a short beep.

import { openConversation } from './console-chat.js';
import { channelLabel, contactName } from './console-util.js';

let audio = null;
let lastAlert = 0;

export function unlockAudio() {
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

export function notifyWaiting(conv) {
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
