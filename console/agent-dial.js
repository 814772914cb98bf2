// The agent page's "Make callrelay open phone links" button: registers the relay as the browser's
// handler for tel: links, so that a phone number link on any page (a CRM's contact) opens
// /agent/dial with the number, where one click on Call places it. Browsers offer this only in a
// secure context (https://, or localhost); elsewhere the page says so instead of showing the button.

(() => {
  const button = document.getElementById('tel-handler');
  const status = document.getElementById('tel-handler-status');
  if (!button || !status) return;
  if (typeof navigator.registerProtocolHandler !== 'function' || !window.isSecureContext) {
    status.textContent =
      'Your browser lets a site open phone links only on an https:// address (or localhost): ' +
      "ask your administrator for the relay's https address.";
    return;
  }
  button.hidden = false;
  button.addEventListener('click', () => {
    try {
      navigator.registerProtocolHandler('tel', `${location.origin}/agent/dial?number=%s`);
      status.textContent =
        'If your browser asks (look near the address bar), allow it: phone links then open here.';
    } catch (err) {
      status.textContent = `Your browser did not take it: ${err instanceof Error ? err.message : String(err)}`;
    }
  });
})();
