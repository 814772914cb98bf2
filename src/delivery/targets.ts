// The configured targets, ready for the engine: each target type's module loaded (registry.ts)
// and created with what targets are given, with its concurrency, retry window and dry-run flag;
// and the same targets as the console and the admin API show them.

import { loadTarget } from '../targets/registry.js';
import type { CommonTargetConfig, Target, TargetDeps } from '../targets/types.js';
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

/** A target as the console and the admin API see it (http/console/types.ts's ConsoleTarget). */
export type ShownTarget = Pick<Target, 'name' | 'type'> & {
  dryRun: boolean;
  link: NonNullable<Target['link']>;
  check: NonNullable<Target['check']>;
};

/** The targets as the console and the admin API see them: links and connection tests. */
export function shownTargets(targets: Map<string, EngineTarget>): ShownTarget[] {
  return [...targets.values()].map(({ target, dryRun }) => ({
    name: target.name,
    type: target.type,
    dryRun: !!dryRun,
    link: (remote) => target.link?.(remote),
    check: async () =>
      target.check
        ? target.check()
        : 'nothing to check without sending a real event (this target type has no test request)',
  }));
}
