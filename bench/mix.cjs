// The bench's traffic, shared by every generator (CommonJS, so that autocannon's worker threads
// can require it): one 3CX call = six v2 webhooks (IVR, queue and phone ringing, pickup, end,
// recording), a new call id every six requests.

'use strict';

function callRequests(k) {
  const id = `260301120000_${k}`;
  const ext = String(100 + (k % 50));
  return [
    `{ "Event": "ringing", "Callerid": "05552221133", "User": "800", "Usertype": "other", "Did": "", "Id": "${id}-0" }`,
    `{ "Event": "ringing", "Callerid": "05552221133", "User": "820", "Usertype": "queue", "Did": "", "Id": "${id}-0" }`,
    `{ "Event": "ringing", "Callerid": "05552221133", "User": "${ext}", "Usertype": "ext", "Did": "", "Id": "${id}-0" }`,
    `{ "Event": "incomingcall_started", "Callerid": "05552221133", "User": "${ext}", "Trtype": "NotDef", "Did": "", "Id": "${id}-1" }`,
    `{ "Event": "incoming", "Callerid": "05552221133", "User": "${ext}", "Finishtype": "Ok", "Transfer": "False", "Did": "", "Duration": "00:${String(k % 60).padStart(2, '0')}", "Id": "${id}-1" }`,
    `{ "Event": "recording", "FileUrls": [ "https://FQDN:5001/webapi/recording/${id}-1-1.mp3" ], "Callerid": "05552221133", "User": "${ext}", "Id": "${id}-1" }`,
  ];
}

/** Bodies in call order from call number `offset` on; each call's six go out in sequence. */
function bodySource(offset) {
  let n = 0;
  return () => {
    const k = offset + Math.floor(n / 6);
    return callRequests(k)[n++ % 6];
  };
}

module.exports = { callRequests, bodySource };
