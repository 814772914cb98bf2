// How an empty HubSpot account answers the requests the HubSpot target makes (dry runs): no
// contact has any number, every agent email is an owner, and what is created gets a fresh id.
// The shapes are those of docs/crm-notes.md section A, as far as the target reads them.

import { queryParam, SandboxIds, type Sandbox } from '../kit/sandbox.js';

export function hubspotSandbox(): Sandbox {
  const ids = new SandboxIds();
  return ({ method, path, json }) => {
    const p = path.split('?')[0]!;
    if (method === 'POST' && p.endsWith('/search'))
      return { status: 200, body: { total: 0, results: [] } };
    const batch = /^\/crm\/v3\/objects\/\w+\/batch\/(create|update)$/.exec(p);
    if (method === 'POST' && batch) {
      type Input = {
        id?: string;
        properties?: Record<string, string>;
        objectWriteTraceId?: string;
      };
      const { inputs } = (json ?? {}) as { inputs?: Input[] };
      const at = new Date().toISOString();
      const results = (inputs ?? []).map((i) => ({
        id: batch[1] === 'create' ? String(ids.fresh()) : i.id,
        properties: i.properties ?? {},
        ...(i.objectWriteTraceId ? { objectWriteTraceId: i.objectWriteTraceId } : {}),
      }));
      return {
        status: batch[1] === 'create' ? 201 : 200,
        body: { status: 'COMPLETE', results, startedAt: at, completedAt: at },
      };
    }
    if (method === 'POST' && /^\/crm\/v3\/objects\/\w+$/.test(p)) {
      const { properties } = (json ?? {}) as { properties?: Record<string, string> };
      return { status: 201, body: { id: String(ids.fresh()), properties: properties ?? {} } };
    }
    if (method === 'PATCH' && /^\/crm\/v3\/objects\/\w+\/\d+$/.test(p))
      return { status: 200, body: { id: p.split('/').at(-1) } };
    if (method === 'GET' && p === '/crm/v3/owners') {
      const email = queryParam(path, 'email');
      return {
        status: 200,
        body: { results: email ? [{ id: String(ids.of(email.toLowerCase())), email }] : [] },
      };
    }
    if (method === 'GET') return { status: 200, body: { results: [] } };
    return {
      status: 404,
      body: { category: 'OBJECT_NOT_FOUND', message: `sandbox: no ${method} ${p}` },
    };
  };
}
