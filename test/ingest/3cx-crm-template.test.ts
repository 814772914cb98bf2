// The 3CX CRM template journal (adapters/3cx-crm-template.yaml) beyond its golden cases: what it
// ignores and what it refuses, and why.

import { describe, expect, it } from 'vitest';
import { compileAdapter, loadAdapterDir } from '../../src/ingest/adapter.js';
import type { RawRequest } from '../../src/domain/request.js';
import { ADAPTERS } from '../support.js';

const journal = compileAdapter(loadAdapterDir(ADAPTERS).get('3cx-crm-template')!, {
  name: 'pbx-journal',
  timezone: 'Europe/Prague',
  defaultCountry: 'CZ',
});

const post = (body: Record<string, unknown>): RawRequest => ({
  source: 'pbx-journal',
  kind: 'webhook',
  receivedAt: '2026-12-06T10:17:00.000Z',
  method: 'POST',
  query: '',
  contentType: 'application/json',
  headers: {},
  body: Buffer.from(JSON.stringify(body)),
});

const report = {
  callType: 'Inbound',
  number: '+420774852629',
  agent: '105',
  start: '20261206101502',
  durationSec: '72',
};

describe('3cx-crm-template adapter', () => {
  it('ignores a test post without a call type, or with it unfilled', async () => {
    expect(await journal.map(post({ test: 'hello' }))).toMatchObject({
      status: 'ignored',
      rule: 'ping',
    });
    expect(await journal.map(post({ ...report, callType: '[CallType]' }))).toMatchObject({
      status: 'ignored',
      rule: 'ping',
    });
  });

  it('refuses a call type it does not know, saying which and what it knows', async () => {
    const r = await journal.map(post({ ...report, callType: 'Voicemail' }));
    expect(r).toMatchObject({ status: 'unmapped', rule: 'report' });
    expect(r.status === 'unmapped' && r.message).toMatch(
      /field outcome: callType "Voicemail" is none of Inbound, Missed, Outbound, Notanswered/,
    );
  });

  it('says why when the journal has no start time at all', async () => {
    const r = await journal.map(post({ ...report, start: '[CallStartTimeUTC]' }));
    expect(r).toMatchObject({ status: 'unmapped', code: 'RELAY_ERR_MISSING_CALL_ID' });
  });

  it("without a UTC start, reads the PBX's local dateTime in its culture's forms", async () => {
    const { start: _, ...noStart } = report;
    for (const dateTime of [
      '06.12.2026 11:15:02',
      '12/6/2026 11:15:02 AM',
      '2026-12-06 11:15:02',
    ]) {
      const r = await journal.map(post({ ...noStart, dateTime }));
      expect(r.status === 'mapped' && r.events[0], dateTime).toMatchObject({
        callId: '3cxrc-20261206101502-105-420774852629-inbound',
        startedAt: '2026-12-06T10:15:02.000Z',
      });
    }
  });

  it('refuses a start it cannot read rather than timing the call at its arrival', async () => {
    const { start: _, ...noStart } = report;
    for (const [body, text] of [
      [{ ...noStart, dateTime: '2026-13-45 99:99' }, '2026-13-45 99:99'],
      [{ ...report, start: '2026-12-06 10:15:02' }, '2026-12-06 10:15:02+0000'],
    ] as const) {
      const r = await journal.map(post(body));
      expect(r, text).toMatchObject({ status: 'unmapped', code: 'RELAY_ERR_MAPPING_FAILED' });
      expect(r.status === 'unmapped' && r.message).toContain(
        `rule report, field startedAt: $toUtc: "${text}" is not a time`,
      );
    }
  });

  it('makes E.164 of every form 3CX sends the number in', async () => {
    for (const number of ['+420774852629', '00420774852629', '420774852629', '774852629']) {
      const r = await journal.map(post({ ...report, number }));
      expect(r.status === 'mapped' && r.events[0]!.externalE164, number).toBe('+420774852629');
    }
  });
});
