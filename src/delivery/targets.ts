// The configured targets, ready for the engine: each target type's module loaded (registry.ts)
// and created with what targets are given, with its concurrency, retry window and dry-run flag.

import { loadTarget } from '../targets/registry.js';
import type { CommonTargetConfig, TargetDeps } from '../targets/types.js';
import type { EngineTarget } from './engine.js';

export async function createTargets(
  configs: readonly (CommonTargetConfig & Record<string, unknown>)[],
  deps: TargetDeps,
): Promise<Map<string, EngineTarget>> {
  const out = new Map<string, EngineTarget>();
  for (const t of configs) {
    const impl = await loadTarget(t.type);
    const target = impl.create(t, deps);
    out.set(t.name, {
      target,
      concurrency: t.concurrency,
      retryForMs: t.retryForHours * 3600_000,
      dryRun: t.dryRun,
    });
  }
  return out;
}
