// How a mapping result is filed in the inbox (shared by every store backend).

import type { MapResult } from './request.js';

/**
 * pending: committed, its calls not folded yet; applied: folded; unmapped: no rule understood it
 * (kept with the reason, replayable); ignored: a rule said to ignore it.
 */
export type InboxState = 'pending' | 'applied' | 'unmapped' | 'ignored';

export function stateOf(result: MapResult): {
  state: InboxState;
  rule: string | null;
  reasonCode: string | null;
  reason: string | null;
} {
  switch (result.status) {
    case 'mapped':
      return { state: 'pending', rule: result.rule, reasonCode: null, reason: null };
    case 'ignored':
      return { state: 'ignored', rule: result.rule, reasonCode: null, reason: result.message };
    case 'unmapped':
      return {
        state: 'unmapped',
        rule: result.rule ?? null,
        reasonCode: result.code,
        reason: result.message,
      };
  }
}
