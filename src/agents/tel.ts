// What a browser hands the tel: handler (/agent/dial?number=%s): the whole link, percent-encoded,
// as in "tel:+49-30-1234567;ext=12" (RFC 3966), or a number a person typed. Read into the number to
// check and dial, and the extension at the far end that no PBX dials for us.

export interface TelNumber {
  /** What the number rules (dial/policy.ts) read: the link's digits, '+', separators kept. */
  number: string;
  /** `;ext=`: keyed in by hand once the other side answers. */
  ext?: string;
}

/** Percent-decoding that leaves what is not valid percent-encoding as it is. */
function decoded(s: string): string {
  // A CRM that encodes its links and a browser that encodes them again: twice at most.
  for (let i = 0; i < 2 && /%[0-9a-f]{2}/i.test(s); i++) {
    try {
      s = decodeURIComponent(s);
    } catch {
      break;
    }
  }
  return s;
}

/** RFC 3966's visual separators, and the spaces people and CRMs put in. */
const plain = (s: string): string => s.replace(/[\s\-.()/\u00a0]/g, '');

export function telNumber(raw: string): TelNumber {
  let s = decoded(raw).trim();
  s = s.replace(/^tel:(?:\/\/)?/i, '');
  const [main = '', ...params] = s.split(';');
  let number = main.trim();
  let ext: string | undefined;
  for (const p of params) {
    const at = p.indexOf('=');
    const key = (at < 0 ? p : p.slice(0, at)).trim().toLowerCase();
    const value = at < 0 ? '' : p.slice(at + 1).trim();
    if ((key === 'ext' || key === 'extension') && value) ext = plain(value);
    // A local number whose context is a number prefix ("+49-30"): the number is both together.
    // A domain as context says nothing the number rules could use: the source's country reads it.
    else if (key === 'phone-context' && value.startsWith('+') && !number.startsWith('+'))
      number = `${plain(value)}${plain(number)}`;
  }
  return ext ? { number, ext } : { number };
}
