// Load generators for `npm run bench`, so that the server, not the generator, sets the pace: wrk
// (one thread) when it is installed, otherwise autocannon on a worker thread. Both send the same
// realistic mix (six 3CX v2 webhooks per call, a new call id every six requests) and report their
// own CPU, so that a saturated generator shows.

import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import mix from './mix.cjs';

const { bodySource, TEMPLATES } = mix;

export const TOKEN = 'bench-token-0123456789';
export const HOOK_PATH = `/hooks/3cx/${TOKEN}`;
export { bodySource };

// mix.cjs's templates filled in by wrk itself, as bodySource fills them: call number k, its
// extension and duration (checked: the same bodies, once past the one request wrk builds before it
// starts). Each template becomes a Lua concatenation, as cheap as a hand-written one; a JSON string
// is a valid Lua string literal.
const luaBody = (t) =>
  t
    .split(/(\{(?:id|ext|dur)\})/)
    .map((part) => (/^\{\w+\}$/.test(part) ? part.slice(1, -1) : JSON.stringify(part)))
    .join(' .. ');
const lua = (offset) => `
local bodies = {
${TEMPLATES.map((t) => `  function(id, ext, dur) return ${luaBody(t)} end`).join(',\n')}
}
local n = 0
local headers = { ["Content-Type"] = "application/json" }
request = function()
  local k = ${offset} + math.floor(n / 6)
  local body = bodies[n % 6 + 1]("260301120000_" .. k, tostring(100 + k % 50),
    string.format("%02d", k % 60))
  n = n + 1
  return wrk.format("POST", nil, headers, body)
end
`;

function hasWrk() {
  if (process.env.BENCH_GENERATOR === 'autocannon') return false;
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
    return true;
  } catch (err) {
    // wrk --version exits 1 after printing its version; only a missing binary is "not installed".
    return /** @type {{ code?: string }} */ (err).code !== 'ENOENT';
  }
}

export const generator = hasWrk() ? 'wrk' : 'autocannon';

/** wrk's "1.23ms" / "456.00us" / "2.01s" in milliseconds. */
function wrkMs(s) {
  const m = /^([\d.]+)(us|ms|s)$/.exec(s);
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
}

async function runWrk({ port, connections, seconds, offset }) {
  const dir = mkdtempSync(join(tmpdir(), 'callrelay-wrk-'));
  const script = join(dir, 'mix.lua');
  writeFileSync(script, lua(offset));
  // `times` after wrk prints the CPU its children used: the generator's own cost.
  const cmd = `wrk -t1 -c${connections} -d${seconds}s --latency -s ${script} http://127.0.0.1:${port}${HOOK_PATH}; times`;
  const out = await new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', cmd], { stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    child.stdout.on('data', (d) => (text += d));
    child.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`wrk: ${code}`))));
  });
  rmSync(dir, { recursive: true, force: true });
  const bad = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const errs = /Socket errors: (.*)/.exec(out);
  if (bad || errs) throw new Error(`wrk: ${bad?.[0] ?? ''} ${errs?.[0] ?? ''}\n${out}`);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const total = Number(/(\d+) requests in/.exec(out)?.[1]);
  const p = (q) => wrkMs(new RegExp(`^\\s+${q}%\\s+(\\S+)`, 'm').exec(out)?.[1] ?? '');
  const times = [...out.matchAll(/(\d+)m([\d.]+)s (\d+)m([\d.]+)s/g)].at(-1);
  const cpuSec = times ? +times[1] * 60 + +times[2] + +times[3] * 60 + +times[4] : NaN;
  return {
    reqPerSec: Math.round(rps),
    p50ms: p(50),
    p99ms: p(99),
    total,
    generatorCpu: +(cpuSec / seconds).toFixed(2),
  };
}

async function runAutocannon({ port, connections, seconds, offset }) {
  // The worker thread copies the environment when it starts: autocannon-request.cjs reads it.
  process.env.BENCH_OFFSET = String(offset);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const result = await autocannon({
    url: `http://127.0.0.1:${port}${HOOK_PATH}`,
    connections,
    duration: seconds,
    workers: 1,
    requests: [
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        setupRequest: fileURLToPath(new URL('./autocannon-request.cjs', import.meta.url)),
      },
    ],
  });
  const cpu = process.cpuUsage(cpu0);
  const wall = (performance.now() - t0) / 1000;
  if (result.non2xx || result.errors)
    throw new Error(`${result.non2xx} non-2xx, ${result.errors} errors`);
  return {
    reqPerSec: Math.round(result.requests.average),
    p50ms: result.latency.p50,
    p99ms: result.latency.p99,
    total: result.requests.total,
    generatorCpu: +((cpu.user + cpu.system) / 1e6 / wall).toFixed(2),
  };
}

/**
 * Closed loop: `connections` connections, each sending its next request when the last answer is
 * in, for `seconds`. generatorCpu is the generator's CPU in cores (1.0 = one core busy).
 */
export function closedLoop(o) {
  return generator === 'wrk' ? runWrk(o) : runAutocannon(o);
}
