// callrelay agent page: the ringing card. The relay streams the agent's view (/agent/events, JSON
// "view" events); this draws it with textContent only (nothing the CRM says becomes markup), turns
// a card into the live call as the views come, notifies when the tab is hidden and the agent
// allowed it, and fetches "My calls" again when a call ends.

'use strict';

(function () {
  const desk = document.getElementById('desk');
  const status = document.getElementById('desk-status');
  if (!desk || !('EventSource' in window)) return;

  const say = (text) => {
    if (status) status.textContent = text;
  };
  const el = (tag, props, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props ?? {})) {
      if (k === 'text') node.textContent = v;
      else if (k === 'class') node.className = v;
      else node.setAttribute(k, v);
    }
    for (const c of children) if (c) node.append(c);
    return node;
  };
  const time = (iso) => iso.replace('T', ' ').slice(0, 16);
  const arrow = (dir) => (dir === 'outbound' ? '↗ out' : dir === 'inbound' ? '↙ in' : '');
  // Links from the CRM open only as web pages.
  const safeUrl = (url) => (/^https?:\/\//i.test(url ?? '') ? url : '');

  function card(c) {
    const who = c.contact;
    const body = el(
      'article',
      { class: `card desk-card ${c.state}`, 'data-card': c.id, 'data-state': c.state },
      el('p', { class: 'desk-state', text: c.status }),
      el('h3', { class: 'desk-number num', text: c.number }),
      who
        ? el(
            'p',
            { class: 'desk-contact' },
            el('strong', { class: 'desk-name', text: who.name }),
            who.company && who.company !== who.name
              ? el('span', { class: 'desk-company', text: ` · ${who.company}` })
              : null,
          )
        : el('p', {
            class: 'desk-contact muted',
            text: c.looking ? 'Looking up the contact…' : 'No contact in the CRM',
          }),
    );
    const url = who && safeUrl(who.url);
    if (url)
      body.append(
        el(
          'p',
          {},
          el('a', { href: url, target: '_blank', rel: 'noopener noreferrer', text: 'Open in CRM' }),
        ),
      );
    if (c.history.length) {
      const list = el('ul', { class: 'plain desk-history' });
      for (const h of c.history)
        list.append(
          el('li', {
            text: [
              time(h.at),
              arrow(h.direction),
              h.outcome ?? '',
              h.answeredBy ? `by ${h.answeredBy}` : '',
            ]
              .filter(Boolean)
              .join(' · '),
          }),
        );
      body.append(el('h4', { text: 'Earlier calls with this number' }), list);
    } else body.append(el('p', { class: 'muted', text: 'No earlier calls with this number.' }));
    return body;
  }

  const seen = new Map();
  /** Cards told about (or there when the page opened), and those waiting for their contact. */
  const told = new Set();
  const waiting = new Map();
  let drawn = false;
  let latest = new Map();
  function draw(view) {
    let ended = false;
    latest = new Map(view.cards.map((c) => [c.id, c]));
    for (const c of view.cards) {
      const was = seen.get(c.id);
      if (was && was !== 'ended' && c.state === 'ended') ended = true;
      seen.set(c.id, c.state);
      // The first view is what was there before the page opened: nothing new to tell.
      if (!drawn) told.add(c.id);
      if (c.state === 'ringing' && !told.has(c.id)) {
        // With the caller's name when the CRM answers soon; without it after a moment.
        if (!c.looking) notify(c);
        else if (!waiting.has(c.id))
          waiting.set(
            c.id,
            setTimeout(() => {
              const now = latest.get(c.id);
              if (now?.state === 'ringing') notify(now);
            }, 1500),
          );
      }
    }
    desk.replaceChildren(...view.cards.map(card));
    if (!view.cards.length) desk.append(el('p', { class: 'muted', text: 'No call right now.' }));
    drawn = true;
    if (ended) void refreshCalls();
  }

  function notify(c) {
    if (told.has(c.id)) return;
    told.add(c.id);
    clearTimeout(waiting.get(c.id));
    waiting.delete(c.id);
    if (!document.hidden || !('Notification' in window)) return;
    if (Notification.permission !== 'granted') return;
    const who = c.contact
      ? `${c.contact.name}${c.contact.company && c.contact.company !== c.contact.name ? `, ${c.contact.company}` : ''}`
      : '';
    const n = new Notification(`Call from ${c.number}`, { body: who, tag: c.id });
    n.addEventListener('click', () => {
      window.focus();
      n.close();
    });
  }

  // "Notify me": only a click may ask (browsers refuse a page that asks by itself).
  const row = document.getElementById('notify-row');
  const button = document.getElementById('notify');
  if (row && button && 'Notification' in window && Notification.permission === 'default') {
    row.hidden = false;
    button.addEventListener('click', async () => {
      const answer = await Notification.requestPermission();
      row.hidden = answer !== 'default';
      if (answer === 'denied') say('Notifications are blocked in this browser.');
    });
  }

  // My calls, when a call ended: the first page only (an older page stays as it was).
  const calls = document.querySelector('[data-calls-src]');
  let busy = false;
  // A call that ended while the list was being fetched: the answer may predate it, so once more.
  let again = false;
  async function refreshCalls() {
    if (!calls) return;
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    again = false;
    try {
      const res = await fetch(calls.getAttribute('data-calls-src'), {
        headers: { accept: 'text/html' },
        credentials: 'same-origin',
        redirect: 'error',
      });
      if (res.ok) {
        const html = await res.text();
        if (html !== calls.innerHTML) calls.innerHTML = html;
      }
    } catch {
      // Signed out or offline: the stream says so.
    } finally {
      busy = false;
      if (again) void refreshCalls();
    }
  }

  const source = new EventSource(desk.getAttribute('data-desk-src'));
  source.addEventListener('view', (ev) => {
    try {
      draw(JSON.parse(ev.data));
    } catch {
      // A view that does not parse is skipped; the next one draws.
    }
  });
  source.addEventListener('open', () => say('Live: a call for you shows here as it rings.'));
  source.addEventListener('error', () => {
    say(
      source.readyState === EventSource.CLOSED
        ? 'Signed out: reload the page to sign in again.'
        : 'Reconnecting…',
    );
  });
})();
