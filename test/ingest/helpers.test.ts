// The helper functions adapters call: durations, local times, phone numbers, placeholders, maps.

import { describe, expect, it } from 'vitest';
import {
  duration,
  e164,
  makeHelpers,
  TimeUnreadable,
  toUtc,
  tryUtc,
} from '../../src/ingest/helpers.js';

describe('helpers', () => {
  it('$duration reads seconds, m:ss, h:mm:ss and a "(0:07)" inside a title', () => {
    expect(duration('00:06')).toBe(6);
    expect(duration('(0:07)')).toBe(7);
    expect(duration('DID-420222000320:Answered call from 420774852629 (0:07)')).toBe(7);
    expect(duration('Successful call to 1 (1:02:03)')).toBe(3723);
    expect(duration('58')).toBe(58);
    expect(duration(44)).toBe(44);
    expect(duration('')).toBeUndefined();
    expect(duration('Unanswered call to 420774852629')).toBeUndefined();
    expect(duration(-1)).toBeUndefined();
  });

  it('$toUtc turns provider local time into UTC with the source time zone', () => {
    expect(toUtc('2023-01-02 14:32:40', undefined, 'Asia/Kolkata')).toBe(
      '2023-01-02T09:02:40.000Z',
    );
    expect(toUtc('230307142318', 'yyMMddHHmmss', 'Europe/Prague')).toBe('2023-03-07T13:23:18.000Z');
    // Summer time in Prague is UTC+2.
    expect(toUtc('250917194513', 'yyMMddHHmmss', 'Europe/Prague')).toBe('2025-09-17T17:45:13.000Z');
    expect(toUtc('2023-01-02T14:32:40+01:00', undefined, 'Asia/Kolkata')).toBe(
      '2023-01-02T13:32:40.000Z',
    );
    expect(toUtc(1672649960, undefined, 'UTC')).toBe('2023-01-02T08:59:20.000Z');
    expect(toUtc('', undefined, 'UTC')).toBeUndefined();
    expect(toUtc('  ', undefined, 'UTC')).toBeUndefined();
    expect(toUtc(null, undefined, 'UTC')).toBeUndefined();
  });

  it('$toUtc reads RFC 2822 / HTTP dates and Unix seconds given as text', () => {
    // Twilio's Timestamp, and the HTTP form; their offset wins over the source's time zone.
    expect(toUtc('Tue, 10 Aug 2010 08:02:17 +0000', undefined, 'Europe/Prague')).toBe(
      '2010-08-10T08:02:17.000Z',
    );
    expect(toUtc('Tue, 10 Aug 2010 10:02:17 +0200', undefined, 'UTC')).toBe(
      '2010-08-10T08:02:17.000Z',
    );
    expect(toUtc('Tue, 10 Aug 2010 08:02:17 GMT', undefined, 'Asia/Kolkata')).toBe(
      '2010-08-10T08:02:17.000Z',
    );
    expect(toUtc('1672649960', undefined, 'Europe/Prague')).toBe('2023-01-02T08:59:20.000Z');
    expect(toUtc(' 1672649960123 ', undefined, 'UTC')).toBe('2023-01-02T08:59:20.123Z');
    // Eight digits stay an ISO date, in the source's zone.
    expect(toUtc('20230102', undefined, 'UTC')).toBe('2023-01-02T00:00:00.000Z');
  });

  it('$toUtc tries a list of formats in order, by name or Luxon tokens', () => {
    const local = ['iso', 'd.M.yyyy H:mm', 'M/d/yyyy h:mm a'];
    expect(toUtc('2026-12-06T11:15', local, 'Europe/Prague')).toBe('2026-12-06T10:15:00.000Z');
    expect(toUtc('6.12.2026 11:15', local, 'Europe/Prague')).toBe('2026-12-06T10:15:00.000Z');
    expect(toUtc('12/6/2026 11:15 AM', local, 'Europe/Prague')).toBe('2026-12-06T10:15:00.000Z');
    expect(toUtc('1281427337', 'unix', 'UTC')).toBe('2010-08-10T08:02:17.000Z');
    expect(toUtc('Tue, 10 Aug 2010 08:02:17 +0000', ['rfc2822'], 'UTC')).toBe(
      '2010-08-10T08:02:17.000Z',
    );
    expect(() => toUtc('x', 3, 'UTC')).toThrow(/format must be a text or a list of texts/);
    expect(() => toUtc('x', [], 'UTC')).toThrow(/format must be a text or a list of texts/);
  });

  it('$toUtc refuses text that no format reads, showing it (shortened) and the formats', () => {
    expect(() => toUtc('not a time', undefined, 'UTC')).toThrow(
      new TimeUnreadable(
        '$toUtc: "not a time" is not a time (read as ISO, SQL, RFC 2822, HTTP or Unix seconds)',
      ),
    );
    expect(() => toUtc('31.12.2026', ['iso', 'M/d/yyyy'], 'UTC')).toThrow(
      `$toUtc: "31.12.2026" is not a time (read as 'iso', 'M/d/yyyy')`,
    );
    expect(() => toUtc('x'.repeat(300), undefined, 'UTC')).toThrow(
      `$toUtc: "${'x'.repeat(40)}…" is not a time`,
    );
    expect(() => toUtc(true, undefined, 'UTC')).toThrow('$toUtc: expected a time, got true');
    expect(() => toUtc(['a', 'b'], undefined, 'UTC')).toThrow(
      '$toUtc: expected a time, got a list of 2',
    );
    // Twice: the refusal is remembered like an answer, and still thrown.
    expect(() => toUtc('not a time', undefined, 'UTC')).toThrow(TimeUnreadable);
  });

  it('$tryUtc reads what $toUtc reads, and gives nothing where $toUtc refuses', () => {
    expect(tryUtc('230307142318', 'yyMMddHHmmss', 'Europe/Prague')).toBe(
      '2023-03-07T13:23:18.000Z',
    );
    expect(tryUtc('6.12.2026 11:15', ['iso', 'd.M.yyyy H:mm'], 'Europe/Prague')).toBe(
      '2026-12-06T10:15:00.000Z',
    );
    // Hour 30: an id that only looks like a 3CX time. Asked twice, as the memo answers the second.
    for (let i = 0; i < 2; i++) {
      expect(tryUtc('260701300000', 'yyMMddHHmmss', 'UTC')).toBeUndefined();
      expect(() => toUtc('260701300000', 'yyMMddHHmmss', 'UTC')).toThrow(TimeUnreadable);
    }
    expect(tryUtc('not a time', undefined, 'UTC')).toBeUndefined();
    expect(tryUtc(['a'], undefined, 'UTC')).toBeUndefined();
    expect(tryUtc('', 'yyMMddHHmmss', 'UTC')).toBeUndefined();
    // A format that is none is the adapter's own mistake, whichever form it calls.
    expect(() => tryUtc('x', 3, 'UTC')).toThrow(
      /^\$tryUtc: the format must be a text or a list of texts/,
    );
    const h = makeHelpers({ timezone: 'Europe/Prague', defaultCountry: undefined, maps: {} });
    expect(h.tryUtc!('230307142318', 'yyMMddHHmmss')).toBe('2023-03-07T13:23:18.000Z');
    expect(h.tryUtc!('231399250000', 'yyMMddHHmmss')).toBeUndefined();
  });

  it('$e164 uses the default country and keeps invalid numbers out', () => {
    expect(e164('420774852629', undefined, undefined)).toBe('+420774852629');
    expect(e164('774852629', undefined, 'CZ')).toBe('+420774852629');
    expect(e164('9958123456', undefined, 'IN')).toBe('+919958123456');
    expect(e164('01204567890', undefined, 'IN')).toBe('+911204567890');
    expect(e164('MAKECALL', undefined, 'CZ')).toBeUndefined();
    expect(e164('12', undefined, 'CZ')).toBeUndefined();
  });

  it('$present, $bool, $urls, $mapValue, $beforeLast', () => {
    const h = makeHelpers({
      timezone: 'UTC',
      defaultCountry: undefined,
      maps: { outcome: { Ok: 'answered', Missed: 'missed' } },
    });
    expect(h.present!('empty', ['empty'])).toBeUndefined();
    expect(h.present!('EMPTY', ['empty'])).toBeUndefined();
    expect(h.present!('  ')).toBeUndefined();
    expect(h.present!('DID-1', ['empty'])).toBe('DID-1');
    expect(h.bool!('True')).toBe(true);
    expect(h.bool!('false')).toBe(false);
    expect(h.bool!('maybe')).toBeUndefined();
    expect(h.urls!(['a', ''], 'b', undefined, ['a'])).toEqual(['a', 'b']);
    expect(h.urls!(undefined)).toBeUndefined();
    expect(h.mapValue!('OK', 'outcome')).toBe('answered');
    expect(h.mapValue!('weird', 'outcome', 'fallback')).toBe('fallback');
    expect(() => h.mapValue!('x', 'nope')).toThrow(/no map named "nope"/);
    expect(h.beforeLast!('230307142318_40-2', '-')).toBe('230307142318_40');
    expect(h.afterLast!('230307142318_40-2', '-')).toBe('2');
  });

  it('$given drops blanks and template variables the sender left unfilled', () => {
    const h = makeHelpers({ timezone: 'UTC', defaultCountry: undefined, maps: {} });
    expect(h.given!('[RecordingUrl]')).toBeUndefined();
    expect(h.given!(' [Contact::ContactID] ')).toBeUndefined();
    expect(h.given!('[Agent_2]')).toBeUndefined();
    expect(h.given!('')).toBeUndefined();
    expect(h.given!(undefined)).toBeUndefined();
    // Text that merely contains brackets is a value.
    expect(h.given!('[VIP] Jana')).toBe('[VIP] Jana');
    expect(h.given!('[a b]')).toBe('[a b]');
    expect(h.given!('https://pbx/rec/1.wav')).toBe('https://pbx/rec/1.wav');
    expect(h.given!(0)).toBe(0);
  });
});
