// How an empty Pipedrive company answers the requests the Pipedrive target makes (dry runs): no
// person has any number, every agent email is a user, and what is created gets a fresh id. The
// shapes are those of docs/crm-notes.md section B, as far as the target reads them.

import { queryParam, SandboxIds, type Sandbox } from '../kit/sandbox.js';

export function pipedriveSandbox(): Sandbox {
  const ids = new SandboxIds();
  const ok = (data: unknown, more: Record<string, unknown> = {}) => ({
    status: 200,
    body: { success: true, data, ...more },
  });
  return ({ method, path, json }) => {
    const p = path.split('?')[0]!;
    if (method === 'GET' && p === '/api/v2/persons/search') return ok({ items: [] });
    if (method === 'GET' && p === '/api/v1/users/find') {
      const email = queryParam(path, 'term') ?? '';
      return ok([{ id: ids.of(email.toLowerCase()), email }]);
    }
    if (method === 'GET' && p === '/api/v1/users/me')
      return ok({ id: ids.of('(token user)'), name: 'sandbox', company_name: 'sandbox' });
    if (method === 'GET' && /^\/api\/v2\/activities\/\d+$/.test(p))
      return ok({ id: Number(p.split('/').at(-1)), note: '' });
    if (method === 'GET')
      return ok([], {
        additional_data: { next_cursor: null, pagination: { more_items_in_collection: false } },
      });
    if (method === 'POST' && p === '/api/v1/callLogs')
      return ok({ id: ids.fresh().toString(16).padStart(32, '0'), ...(json as object) });
    if (method === 'POST' && /^\/api\/v1\/callLogs\/[^/]+\/recordings$/.test(p)) return ok(true);
    if (method === 'POST') return ok({ id: ids.fresh(), ...(json as object) });
    return { status: 404, body: { success: false, error: `sandbox: no ${method} ${p}` } };
  };
}
