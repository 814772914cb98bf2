// callrelay console: the only script (the CSP allows no inline code). Every page works without
// it; it adds live call rows, revealing and copying webhook URLs, confirm dialogs, and why a
// recording cannot be played.

'use strict';

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.getAttribute('content') ?? '';

  // Confirm before a form that changes something a second time or in bulk.
  document.addEventListener('submit', (ev) => {
    const form = ev.target;
    if (!(form instanceof HTMLFormElement)) return;
    const question = form.dataset.confirm;
    if (question && !window.confirm(question)) ev.preventDefault();
  });

  // Live calls: the server says "changed" (SSE); fetch the rows again and swap them if they
  // differ. One fetch at a time; changes during a fetch cause one more.
  const live = document.querySelector('[data-live-src]');
  const status = document.getElementById('live-status');
  if (live && 'EventSource' in window) {
    let busy = false;
    let again = false;
    const refresh = async () => {
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      try {
        const res = await fetch(live.getAttribute('data-live-src'), {
          headers: { accept: 'text/html' },
          credentials: 'same-origin',
        });
        if (res.status === 401) {
          if (status) status.textContent = 'Signed out: reload the page to sign in again.';
          source.close();
          return;
        }
        if (!res.ok) return;
        const html = await res.text();
        if (html !== live.innerHTML) swap(live, html);
      } catch {
        // Offline for a moment: the next event tries again.
      } finally {
        busy = false;
        if (again) {
          again = false;
          void refresh();
        }
      }
    };
    const source = new EventSource('/console/events');
    source.addEventListener('changed', () => void refresh());
    source.addEventListener('open', () => {
      if (status) status.textContent = 'Live: new calls appear here.';
      // Whatever happened while disconnected.
      void refresh();
    });
    source.addEventListener('error', () => {
      if (status) status.textContent = 'Reconnecting…';
    });
  }

  /** Replace a region's HTML, keeping keyboard focus on the same link if it is still there. */
  function swap(region, html) {
    const focused = region.contains(document.activeElement)
      ? document.activeElement?.getAttribute('href')
      : null;
    region.innerHTML = html;
    if (focused) {
      for (const a of region.querySelectorAll('a[href]'))
        if (a.getAttribute('href') === focused) {
          a.focus();
          break;
        }
    }
  }

  // Webhook URLs: the token is fetched only when asked for, and never put in the page before.
  const reveal = async (form) => {
    const res = await fetch(form.action, {
      method: 'POST',
      headers: { accept: 'application/json', 'x-csrf-token': csrf },
      credentials: 'same-origin',
    });
    const body = await res.json();
    if (!res.ok) throw new Error(body?.error?.message ?? `HTTP ${res.status}`);
    return body.url;
  };

  for (const form of document.querySelectorAll('form[data-reveal]')) {
    const out = document.getElementById(form.dataset.reveal);
    const button = form.querySelector('button');
    const copy = document.querySelector(`button[data-copy="${form.dataset.reveal}"]`);
    const masked = out.textContent;
    let shown = null;
    const say = (text) => {
      const note = document.getElementById(`${form.dataset.reveal}-note`);
      if (note) note.textContent = text;
    };
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      if (shown !== null) {
        out.textContent = masked;
        shown = null;
        button.textContent = 'Reveal';
        button.setAttribute('aria-expanded', 'false');
        return;
      }
      try {
        shown = await reveal(form);
        out.textContent = shown;
        button.textContent = 'Hide';
        button.setAttribute('aria-expanded', 'true');
        say('');
      } catch (err) {
        say(`Could not reveal: ${err.message}`);
      }
    });
    if (copy) {
      copy.hidden = false;
      copy.addEventListener('click', async () => {
        try {
          const url = shown ?? (await reveal(form));
          await copyText(url);
          say('Copied.');
        } catch (err) {
          say(`Could not copy: ${err.message}`);
        }
      });
    }
  }

  // A recording the phone system cannot give: say why (the relay's answer) instead of leaving a
  // silent 0:00 player.
  for (const audio of document.querySelectorAll('audio[data-recording]')) {
    audio.addEventListener('error', async () => {
      const note = document.getElementById(audio.dataset.recording);
      if (!note) return;
      let why = 'the relay could not get it from the phone system';
      try {
        const res = await fetch(audio.currentSrc || audio.src, {
          headers: { accept: 'application/json', range: 'bytes=0-0' },
          credentials: 'same-origin',
        });
        if (!res.ok) why = (await res.json())?.error?.message ?? `HTTP ${res.status}`;
        else await res.body?.cancel();
      } catch {
        // Offline: the general reason above.
      }
      note.textContent = `This recording cannot be played: ${why}.`;
      note.hidden = false;
      audio.hidden = true;
    });
  }

  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      try {
        return await navigator.clipboard.writeText(text);
      } catch {
        // Denied (browser settings): the old way below still works.
      }
    }
    // Plain-HTTP pages have no clipboard API: the old way.
    const area = document.createElement('textarea');
    area.value = text;
    area.setAttribute('readonly', '');
    area.className = 'skip';
    document.body.append(area);
    area.select();
    const ok = document.execCommand('copy');
    area.remove();
    if (!ok) throw new Error('the browser refused');
  }
})();
