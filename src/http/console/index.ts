// The operator console (placeholder until the console branch lands: it replaces this file).

import type { Hono } from 'hono';
import type { ConsoleOptions } from './types.js';

export function mountConsole(_app: Hono, _opts: ConsoleOptions): void {}
