// How a receiver answers the generic HTTP target in a dry run: every event is taken (200).

import type { Sandbox } from '../kit/sandbox.js';

export const httpSandbox = (): Sandbox => () => ({ status: 200, body: undefined });
