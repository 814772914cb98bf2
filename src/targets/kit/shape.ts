// A target's named JSONata expressions (HubSpot's `title`, `properties`, ...; a REST recipe's
// steps): checked at config load with relay.yaml places (`check`), compiled once when the target
// is made, evaluated over the call's context (context.ts). An expression that fails at delivery,
// or whose value a CRM refuses, is reported with the place it is written at, so the admin knows
// which line to fix. Documented in docs/targets.md.

import { basename } from 'node:path';
import {
  compileExpr,
  ExprError,
  parseExpr,
  unknownCalls,
  type CompiledExpr,
  type JNode,
} from '../../lib/expr.js';
import { exprIssueAt, type ConfigIssue } from '../../lib/yaml.js';
import type { TargetPlace } from '../types.js';
import { CONTEXT_HELPER_NAMES, CONTEXT_HELPERS, type CallContext } from './context.js';
import { DeliveryError } from './errors.js';

/** Where each expression is written: "relay.yaml:23:7", by name (added to the config at load). */
export type ShapePlaces = Record<string, string>;

const HELPERS = new Set(CONTEXT_HELPER_NAMES);

/**
 * Check the named expressions of a target (`names`: its config fields that hold JSONata) at
 * config load: syntax and unknown $functions, each at its relay.yaml line and column. Also returns
 * where each one starts, for messages at delivery time.
 */
export function checkShape(
  config: Record<string, unknown>,
  names: readonly string[],
  at: TargetPlace,
): { issues: ConfigIssue[]; places: ShapePlaces } {
  const issues: ConfigIssue[] = [];
  const places: ShapePlaces = {};
  for (const name of names) {
    const source = config[name];
    if (typeof source !== 'string') continue;
    const path = [...at.path, name];
    const start = exprIssueAt(at.yaml, path, 0, '');
    places[name] = `${basename(at.yaml.file)}:${start.line}:${start.col}`;
    let ast: JNode;
    try {
      ast = parseExpr(source).ast;
    } catch (err) {
      const e = err as ExprError;
      issues.push(
        exprIssueAt(
          at.yaml,
          path,
          e.position === undefined ? undefined : Math.max(0, e.position - 1),
          `${name}: expression error: ${e.message}`,
        ),
      );
      continue;
    }
    for (const call of unknownCalls(ast, HELPERS))
      issues.push(
        exprIssueAt(
          at.yaml,
          path,
          call.position,
          `${name}: unknown function $${call.name} (known besides JSONata's: ${CONTEXT_HELPER_NAMES.map((n) => `$${n}`).join(', ')})`,
        ),
      );
  }
  return { issues, places };
}

/** A target's expressions, compiled once; those not configured are absent. */
export class Shape {
  private readonly exprs = new Map<string, CompiledExpr>();

  constructor(
    sources: Record<string, string | undefined>,
    private readonly places: ShapePlaces = {},
  ) {
    for (const [name, source] of Object.entries(sources))
      if (typeof source === 'string') this.exprs.set(name, compileExpr(source, CONTEXT_HELPERS));
  }

  has(name: string): boolean {
    return this.exprs.has(name);
  }

  /** "relay.yaml:23:7 properties" (or just the name when the place is unknown). */
  where(name: string): string {
    const p = this.places[name];
    return p ? `${p} ${name}` : name;
  }

  /**
   * The expression's value over the context (undefined if it is not configured). A failure is
   * the configuration's, not the CRM's: the delivery dead-letters, naming the place.
   */
  async value(name: string, ctx: CallContext): Promise<unknown> {
    const e = this.exprs.get(name);
    if (!e) return undefined;
    try {
      return await e.evaluate(ctx as unknown as Record<string, unknown>, {});
    } catch (err) {
      throw this.refused(name, (err as Error).message);
    }
  }

  /** A text (a title, a note): undefined keeps the built-in one. */
  async text(name: string, ctx: CallContext): Promise<string | undefined> {
    const v = await this.value(name, ctx);
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'object') throw this.refused(name, 'expected a text, got an object or list');
    return String(v);
  }

  /**
   * An object of fields (HubSpot properties, Pipedrive call-log fields): undefined when the
   * expression gives nothing; a null value stays null (the caller drops that field).
   */
  async fields(name: string, ctx: CallContext): Promise<Record<string, unknown> | undefined> {
    const v = await this.value(name, ctx);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'object' || Array.isArray(v))
      throw this.refused(name, 'expected an object of fields, e.g. { "call_queue": call.queue }');
    return v as Record<string, unknown>;
  }

  /** The dead letter for an expression whose value cannot be sent: "relay.yaml:23:7 name: why". */
  refused(name: string, why: string): DeliveryError {
    return new DeliveryError(`${this.where(name)}: ${why}`, { retryable: false });
  }
}

/**
 * Property values as HubSpot takes them: strings; a list as HubSpot's multi-select "a;b"; null
 * kept (the caller drops it); an object refused.
 */
export function asStrings(
  fields: Record<string, unknown>,
  refuse: (why: string) => Error,
): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    if (v === null) out[k] = null;
    else if (Array.isArray(v) && v.every((x) => x === null || typeof x !== 'object'))
      out[k] = v.filter((x) => x !== null).join(';');
    else if (typeof v === 'object') throw refuse(`"${k}" is an object; give a text or a number`);
    else out[k] = String(v);
  }
  return out;
}
