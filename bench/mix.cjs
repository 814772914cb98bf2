// The bench's traffic, shared by every generator (CommonJS, so that autocannon's worker threads
// can require it): one 3CX call = six v2 webhooks (IVR, queue and phone ringing, pickup, end,
// recording), a new call id every six requests. The bodies are templates with {id}, {ext} and
// {dur}, so that wrk's Lua script (load.mjs) fills in the very same ones.

'use strict';

const TEMPLATES = [
  '{ "Event": "ringing", "Callerid": "05552221133", "User": "800", "Usertype": "other", "Did": "", "Id": "{id}-0" }',
  '{ "Event": "ringing", "Callerid": "05552221133", "User": "820", "Usertype": "queue", "Did": "", "Id": "{id}-0" }',
  '{ "Event": "ringing", "Callerid": "05552221133", "User": "{ext}", "Usertype": "ext", "Did": "", "Id": "{id}-0" }',
  '{ "Event": "incomingcall_started", "Callerid": "05552221133", "User": "{ext}", "Trtype": "NotDef", "Did": "", "Id": "{id}-1" }',
  '{ "Event": "incoming", "Callerid": "05552221133", "User": "{ext}", "Finishtype": "Ok", "Transfer": "False", "Did": "", "Duration": "00:{dur}", "Id": "{id}-1" }',
  '{ "Event": "recording", "FileUrls": [ "https://FQDN:5001/webapi/recording/{id}-1-1.mp3" ], "Callerid": "05552221133", "User": "{ext}", "Id": "{id}-1" }',
];

/** Request `i` (0 to 5) of call number `k`. */
function callRequest(k, i) {
  const v = {
    id: `260301120000_${k}`,
    ext: String(100 + (k % 50)),
    dur: String(k % 60).padStart(2, '0'),
  };
  return /** @type {string} */ (TEMPLATES[i]).replace(/\{(id|ext|dur)\}/g, (_, name) => v[name]);
}

/** Bodies in call order from call number `offset` on; each call's six go out in sequence. */
function bodySource(offset) {
  let n = 0;
  return () => {
    const body = callRequest(offset + Math.floor(n / 6), n % 6);
    n++;
    return body;
  };
}

module.exports = { TEMPLATES, bodySource };
