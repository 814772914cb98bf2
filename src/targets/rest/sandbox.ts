// How an empty account of a recipe's CRM answers (dry runs): lookups find nobody (the recipe's
// notFound status, or `sandbox.lookup`'s body), what is created or upserted gets a fresh id (in
// the body `sandbox.create` / `sandbox.upsert` make, else `{ "id": ... }`, and in Location), a
// lost create is never found, a step's `then:` requests are answered as its update is, everything
// else is a plain 200.

import { SandboxIds, type Sandbox, type SandboxAnswer } from '../kit/sandbox.js';
import { expression, type Expression } from './compile.js';
import type { Recipe } from './recipe.js';

export function recipeSandbox(
  def: Recipe,
  vars: Record<string, unknown>,
  notFound: { contact: number; user: number; find: number },
): Sandbox {
  const ids = new SandboxIds();
  const x: Partial<Record<string, Expression>> = Object.fromEntries(
    Object.entries(def.sandbox ?? {}).map(([k, v]) => [k, expression(v!)]),
  );
  const body = async (
    e: Expression | undefined,
    input: Record<string, unknown>,
    otherwise: unknown,
  ): Promise<unknown> => (e ? e.evaluate(input) : otherwise);
  return async ({ method, path, json, body: text, step }): Promise<SandboxAnswer> => {
    const request = {
      method,
      path,
      json,
      ...(text === undefined
        ? {}
        : { body: text, form: Object.fromEntries(new URLSearchParams(text)) }),
    };
    const bare = path.split('?')[0]!;
    switch (step) {
      case 'contact':
        return x.lookup
          ? { status: 200, body: await x.lookup.evaluate({ request, vars }) }
          : { status: notFound.contact, body: undefined };
      case 'user': {
        if (!x.user) return { status: notFound.user, body: undefined };
        const id = String(ids.of(new URLSearchParams(path.split('?')[1] ?? '').toString()));
        return { status: 200, body: await x.user.evaluate({ request, vars, id }) };
      }
      case 'find':
        return { status: notFound.find, body: undefined };
      case 'create':
      case 'upsert': {
        const id = String(ids.fresh());
        return {
          status: 201,
          headers: { location: `${bare.replace(/\/+$/, '')}/${id}` },
          body: await body(x[step], { request, vars, id }, { id }),
        };
      }
      case 'update':
      case 'then':
        return { status: 200, body: await body(x.update, { request, vars }, {}) };
      default:
        return { status: 200, body: {} };
    }
  };
}
