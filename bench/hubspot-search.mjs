// HubSpot's contact search for the caller-ID bench (callerid.mjs), in a process of its own as
// HubSpot is remote: the load generator's work must not bunch the arrivals it counts. It knows
// the bench's callers (a contact matches on its national digits, as HubSpot's calculated phone
// properties do), counts searches per number, and answers 429 above HubSpot's documented search
// rate (5 a second, counted as requests arrive). GET /stats gives the counts.
import { createServer } from 'node:http';
import { contactId, NUMBERS, numberOf, PORTAL } from './callerid.mjs';

/** HubSpot's search limit: requests per second per account. */
const SEARCH_PER_SEC = 5;
const stats = { searches: 0, tooMany: 0, other: 0, mostForOneNumber: 0 };
/** @type {Map<string, number>} */
const perNumber = new Map();
/** @type {number[]} */
const window = [];

const server = createServer((req, res) => {
  // Counted when the request arrives, before its body: where HubSpot counts it.
  const arrived = performance.now();
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    const url = req.url ?? '';
    res.setHeader('content-type', 'application/json');
    if (url === '/stats') return res.end(JSON.stringify(stats));
    if (req.method !== 'POST' || !url.startsWith('/crm/v3/objects/contacts/search')) {
      stats.other++;
      if (url.startsWith('/account-info/')) return res.end(`{"portalId":${PORTAL}}`);
      return res.end('{"results":[]}');
    }
    while (window.length && arrived - /** @type {number} */ (window[0]) >= 1000) window.shift();
    if (window.length >= SEARCH_PER_SEC) {
      stats.tooMany++;
      res.statusCode = 429;
      return res.end(
        '{"status":"error","message":"You have reached your secondly limit.","category":"RATE_LIMITS"}',
      );
    }
    window.push(arrived);
    stats.searches++;
    // Every value the filters or the query carry, as digits.
    const q = JSON.parse(body || '{}');
    const values = [
      q.query,
      ...(q.filterGroups ?? []).flatMap((/** @type {any} */ g) =>
        (g.filters ?? []).flatMap((/** @type {any} */ f) => [f.value, ...(f.values ?? [])]),
      ),
    ]
      .filter((v) => v !== undefined && v !== null)
      .map((v) => String(v).replace(/\D/g, ''))
      .filter((d) => d.length >= 6);
    const results = [];
    for (let i = 0; i < NUMBERS; i++) {
      const national = numberOf(i).slice(4);
      if (!values.some((d) => d === national || d.endsWith(national))) continue;
      const n = (perNumber.get(national) ?? 0) + 1;
      perNumber.set(national, n);
      stats.mostForOneNumber = Math.max(stats.mostForOneNumber, n);
      results.push({
        id: contactId(i),
        properties: {
          firstname: 'Caller',
          lastname: `Number ${i}`,
          company: 'Bench s.r.o.',
          email: `caller${i}@bench.example`,
          phone: `+420 774 100 ${String(i).padStart(3, '0')}`,
          hs_searchable_calculated_phone_number: national,
          createdate: '2025-01-01T08:00:00.000Z',
          hs_object_id: contactId(i),
        },
        createdAt: '2025-01-01T08:00:00.000Z',
        updatedAt: '2025-01-01T08:00:00.000Z',
        archived: false,
      });
    }
    res.end(JSON.stringify({ total: results.length, results }));
  });
});
server.listen(Number(process.env.PORT), '127.0.0.1');
