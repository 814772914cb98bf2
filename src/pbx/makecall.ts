// Click-to-call through a 3CX PBX: GET <pbx>/webapi/<key>/makecall?first=<ext>&second=<number>
// makes the PBX ring the agent's phone and then dial the number; it answers {"chid": "..."}, the
// channel id that the call's webhooks carry later (3CX WebAPI add-on).

import { request } from 'undici';

export interface MakecallSettings {
  url: string;
  key: string;
  timeoutSec: number;
}

export interface Placed {
  chid: string;
  /** The PBX's answer as received, stored as the call's origin (kind pbx-response). */
  body: Buffer;
  /** The request's query (first, second), without the key. */
  query: string;
}

/** Why the PBX did not place the call, without its key or address in the text. */
export class MakecallError extends Error {
  override readonly name = 'MakecallError';
}

export async function makecall(
  pbx: MakecallSettings,
  agent: string,
  digits: string,
): Promise<Placed> {
  const query = new URLSearchParams({ first: agent, second: digits }).toString();
  const url = `${pbx.url.replace(/\/+$/, '')}/webapi/${encodeURIComponent(pbx.key)}/makecall?${query}`;
  const ms = pbx.timeoutSec * 1000;
  let res;
  try {
    res = await request(url, { method: 'GET', headersTimeout: ms, bodyTimeout: ms });
  } catch (err) {
    const code = (err as { code?: string }).code ?? 'no answer';
    throw new MakecallError(`the PBX did not answer (${code})`);
  }
  const body = Buffer.from(await res.body.arrayBuffer());
  if (res.statusCode !== 200)
    throw new MakecallError(
      `the PBX answered ${res.statusCode}${body.length ? `: ${body.toString('utf8').slice(0, 200)}` : ''}`,
    );
  let chid: unknown;
  try {
    chid = (JSON.parse(body.toString('utf8')) as { chid?: unknown }).chid;
  } catch {
    chid = undefined;
  }
  if (typeof chid !== 'string' || !chid)
    throw new MakecallError(
      `the PBX answered without a chid: ${body.toString('utf8').slice(0, 200)}`,
    );
  return { chid, body, query };
}
