// Agents' company sign-in against a real OpenID Connect provider (oidc-provider on 127.0.0.1), over
// HTTP with redirects followed by hand and cookies kept per server as a browser would: the way in
// end to end, what is refused on the way back (altered state, a replayed answer, a nonce not the
// one sent, an email not in the directory or not verified, or unsaid without domains), and what an
// agent's session may not reach (the console, /api); signing out, and a reload that removes the
// agent or gives their extension to someone else, end it.

import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/lib/yaml.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { freePort, MAIN, tempDir, TOKENS, writeRelayYaml } from '../support.js';
import { OIDC_CLIENT, OidcServer, oidcYaml } from '../fakes/oidc.js';

let relay: Relay | undefined;
let idp: OidcServer | undefined;
afterEach(async () => {
  await relay?.close();
  await idp?.close();
  relay = idp = undefined;
});

/** The cookies one server set, as a browser keeps them (path and expiry aside). */
class Jar {
  private readonly all = new Map<string, string>();
  take(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair = ''] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (!value || /max-age=0\b/i.test(line)) this.all.delete(name);
      else this.all.set(name, value);
    }
  }
  get(name: string): string | undefined {
    return this.all.get(name);
  }
  get header(): string {
    return [...this.all].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

const directory = (email = 'Alice@Example.com'): string => `agents:
  - { extension: "101", name: Alice, email: ${email} }
  - { extension: "102", name: Bob, email: bob@example.com }
`;

interface Setup {
  base: string;
  file: string;
  jar: Jar;
  idpJar: Jar;
}

async function setup(
  opts: { agents?: string; issuer?: string; oidc?: string; lean?: boolean } = {},
): Promise<Setup> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  if (!opts.issuer)
    idp = await new OidcServer().start(`${base}/agent/oidc/callback`, 0, { lean: opts.lean });
  const file = writeRelayYaml(tempDir(), {
    port,
    server: `  publicUrl: ${base}\n`,
    more: `${opts.agents ?? directory()}${oidcYaml(opts.issuer ?? idp!.issuer, 'Test IdP', opts.oidc)}`,
  });
  relay = await startRelay(loadConfig(file, {}));
  return { base, file, jar: new Jar(), idpJar: new Jar() };
}

async function get(url: string, jar: Jar): Promise<Response> {
  const res = await fetch(url, { redirect: 'manual', headers: { cookie: jar.header } });
  jar.take(res);
  return res;
}

/** Press "Sign in with ...": the provider's authorization URL (the flow's cookie is in `jar`). */
async function leave(s: Setup, next = '/agent'): Promise<URL> {
  const res = await get(`${s.base}/agent/sign-in/oidc?next=${encodeURIComponent(next)}`, s.jar);
  expect(res.status).toBe(303);
  expect(s.jar.get('callrelay_oidc')).toBeDefined();
  return new URL(res.headers.get('location')!);
}

/** At the provider: log in as `account`; the relay's callback URL the provider sends back to. */
async function logIn(s: Setup, authorize: URL, account: string): Promise<string> {
  // A browser not signed in at the provider yet, so that its login form asks who this is.
  s.idpJar = new Jar();
  let url = authorize.href;
  for (let hops = 0; hops < 10; hops++) {
    if (url.startsWith(s.base)) return url;
    const res = await get(url, s.idpJar);
    if (res.status === 200) {
      // The development login form: any password.
      const post = await fetch(url, {
        method: 'POST',
        redirect: 'manual',
        headers: { cookie: s.idpJar.header, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ prompt: 'login', login: account, password: 'x' }),
      });
      s.idpJar.take(post);
      expect(post.status).toBe(303);
      url = new URL(post.headers.get('location')!, url).href;
      continue;
    }
    expect([302, 303]).toContain(res.status);
    url = new URL(res.headers.get('location')!, url).href;
  }
  throw new Error('the provider never sent the browser back to the relay');
}

/** Sign in as `account` end to end; the callback's answer. */
async function signIn(s: Setup, account: string): Promise<{ res: Response; callback: string }> {
  const callback = await logIn(s, await leave(s), account);
  return { res: await get(callback, s.jar), callback };
}

const codeOf = async (res: Response): Promise<string | undefined> =>
  /<code>(RELAY_ERR_\w+)<\/code>/.exec(await res.text())?.[1];

describe("agents' company sign-in (OpenID Connect)", () => {
  it('signs an agent in end to end, as an agent only, and signing out ends it', async () => {
    const s = await setup();
    const page = await get(`${s.base}/agent/sign-in`, s.jar);
    expect(await page.text()).toContain('Sign in with Test IdP');

    const authorize = await leave(s, '/agent?tab=calls');
    expect(authorize.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorize.searchParams.get('state')).toBeTruthy();
    expect(authorize.searchParams.get('nonce')).toBeTruthy();
    expect(authorize.searchParams.get('redirect_uri')).toBe(`${s.base}/agent/oidc/callback`);
    const callback = await logIn(s, authorize, 'alice');
    const flowCookie = s.jar.get('callrelay_oidc')!;
    const done = await get(callback, s.jar);
    expect(done.status).toBe(200);
    // The directory says Alice@Example.com, the provider alice@example.com: the same person.
    expect(await done.text()).toContain('url=/agent?tab=calls');
    expect(s.jar.get('callrelay_oidc')).toBeUndefined();
    const session = s.jar.get('callrelay_console');
    expect(session).toBeDefined();

    const mine = await get(`${s.base}/agent`, s.jar);
    expect(mine.status).toBe(200);
    expect(await mine.text()).toContain('Alice (101)');
    // No admin page, no /api route.
    const console = await get(`${s.base}/console/setup`, s.jar);
    expect(console.status).toBe(303);
    expect(console.headers.get('location')).toMatch(/^\/console\/sign-in/);
    expect((await get(`${s.base}/api/calls`, s.jar)).status).toBe(401);
    expect(
      (
        await fetch(`${s.base}/api/agents/102/sign-in-link`, {
          method: 'POST',
          headers: { cookie: s.jar.header },
        })
      ).status,
    ).toBe(401);

    // The provider's answer again, with the flow's cookie as it was: its code is used up.
    const replay = await fetch(callback, {
      redirect: 'manual',
      headers: { cookie: `callrelay_oidc=${flowCookie}` },
    });
    expect(replay.status).toBe(400);
    expect(await codeOf(replay)).toBe('RELAY_ERR_SIGN_IN_EXPIRED');
    expect(replay.headers.getSetCookie().join()).not.toContain('callrelay_console=');

    const html = await (await get(`${s.base}/agent`, s.jar)).text();
    const csrf = /name="_csrf" value="([^"]+)"/.exec(html)![1]!;
    const out = await fetch(`${s.base}/agent/sign-out`, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie: s.jar.header, origin: s.base, 'sec-fetch-site': 'same-origin' },
      body: new URLSearchParams({ _csrf: csrf }),
    });
    expect(out.status).toBe(303);
    // Ended on the server: the old cookie no longer works.
    const after = await fetch(`${s.base}/agent`, {
      redirect: 'manual',
      headers: { cookie: `callrelay_console=${session}` },
    });
    expect(after.status).toBe(303);
    expect(after.headers.get('location')).toMatch(/^\/agent\/sign-in/);
  });

  it('refuses an altered state, a nonce not the one sent, and an answer without its browser', async () => {
    const s = await setup();
    const callback = new URL(await logIn(s, await leave(s), 'alice'));
    callback.searchParams.set('state', 'x' + callback.searchParams.get('state'));
    const tampered = await get(callback.href, s.jar);
    expect(tampered.status).toBe(400);
    expect(await codeOf(tampered)).toBe('RELAY_ERR_SIGN_IN_EXPIRED');
    expect(s.jar.get('callrelay_console')).toBeUndefined();

    // The provider signs a nonce other than the one the relay sent and remembers.
    const authorize = await leave(s);
    authorize.searchParams.set('nonce', 'not-the-relays-nonce');
    const wrongNonce = await get(await logIn(s, authorize, 'alice'), s.jar);
    expect(wrongNonce.status).toBe(400);
    expect(await codeOf(wrongNonce)).toBe('RELAY_ERR_SIGN_IN_EXPIRED');
    expect(s.jar.get('callrelay_console')).toBeUndefined();

    // A good answer opened in another browser (no flow cookie): nothing to check it against.
    const good = await logIn(s, await leave(s), 'alice');
    const elsewhere = await fetch(good, { redirect: 'manual' });
    expect(elsewhere.status).toBe(400);
    expect(await codeOf(elsewhere)).toBe('RELAY_ERR_SIGN_IN_EXPIRED');
    // And a forged flow cookie is no flow.
    const forged = await fetch(good, {
      redirect: 'manual',
      headers: { cookie: `callrelay_oidc=${'A'.repeat(80)}` },
    });
    expect(forged.status).toBe(400);
  });

  it('refuses an email not in the directory, and one the provider has not verified', async () => {
    const s = await setup();
    const unknown = (await signIn(s, 'mallory')).res;
    expect(unknown.status).toBe(403);
    const text = await unknown.text();
    expect(text).toContain('RELAY_ERR_AGENT_UNKNOWN');
    expect(text).toContain('mallory@example.com');
    expect(text).toContain('relay.yaml agents:');
    expect(s.jar.get('callrelay_console')).toBeUndefined();

    const unverified = (await signIn(s, 'unverified')).res;
    expect(unverified.status).toBe(403);
    expect(await codeOf(unverified)).toBe('RELAY_ERR_SIGN_IN_REFUSED');
    expect(s.jar.get('callrelay_console')).toBeUndefined();
    // Nothing of the client's secret on any page.
    expect(text).not.toContain(OIDC_CLIENT.secret);
  });

  it('refuses email_verified "false" (a string), and no email_verified without domains', async () => {
    const s = await setup();
    const stringFalse = (await signIn(s, 'unverified-string')).res;
    expect(stringFalse.status).toBe(403);
    expect(await codeOf(stringFalse)).toBe('RELAY_ERR_SIGN_IN_REFUSED');
    // The provider says nothing on it (as Entra): nothing to trust the email by.
    const unsaid = (await signIn(s, 'unsaid')).res;
    expect(unsaid.status).toBe(403);
    const text = await unsaid.text();
    expect(text).toContain('RELAY_ERR_SIGN_IN_REFUSED');
    expect(text).toContain('set auth.oidc.domains');
    expect(s.jar.get('callrelay_console')).toBeUndefined();
  });

  it("takes an email the provider says nothing on when it is of the organisation's domains", async () => {
    const s = await setup({ oidc: '    domains: [Example.com]\n' });
    expect((await signIn(s, 'unsaid')).res.status).toBe(200);
    expect(await (await get(`${s.base}/agent`, s.jar)).text()).toContain('Alice (101)');
    // A provider that does say "not verified" is still believed.
    expect((await signIn(s, 'unverified-string')).res.status).toBe(403);
  });

  it('ends the session when the extension passes to someone else in the directory', async () => {
    const s = await setup();
    expect((await signIn(s, 'alice')).res.status).toBe(200);
    expect((await get(`${s.base}/agent`, s.jar)).status).toBe(200);
    writeFileSync(
      s.file,
      readFileSync(s.file, 'utf8').replace(
        'name: Alice, email: Alice@Example.com',
        'name: Carol, email: carol@example.com',
      ),
    );
    await relay!.reload();
    const gone = await get(`${s.base}/agent`, s.jar);
    expect(gone.status).toBe(303);
    expect(gone.headers.get('location')).toMatch(/^\/agent\/sign-in/);
  });

  it('refuses emails outside auth.oidc.domains', async () => {
    const s = await setup({ oidc: '    domains: [example.org]\n' });
    const res = (await signIn(s, 'alice')).res;
    expect(res.status).toBe(403);
    const text = await res.text();
    expect(text).toContain('RELAY_ERR_SIGN_IN_REFUSED');
    expect(text).toContain('Accounts of example.com cannot sign in here');
    expect(s.jar.get('callrelay_console')).toBeUndefined();
  });

  it('reads the email at userinfo when the ID token has none', async () => {
    const s = await setup({ lean: true });
    const { res } = await signIn(s, 'alice');
    expect(res.status).toBe(200);
    expect(await (await get(`${s.base}/agent`, s.jar)).text()).toContain('Alice (101)');
    // And email_verified from there too.
    expect((await signIn(s, 'unverified')).res.status).toBe(403);
  });

  it('signs out an agent a reload removes from the directory', async () => {
    const s = await setup();
    expect((await signIn(s, 'alice')).res.status).toBe(200);
    expect((await get(`${s.base}/agent`, s.jar)).status).toBe(200);
    writeFileSync(
      s.file,
      readFileSync(s.file, 'utf8').replace(/ {2}- \{ extension: "101".*\n/, ''),
    );
    await relay!.reload();
    const gone = await get(`${s.base}/agent`, s.jar);
    expect(gone.status).toBe(303);
    expect(gone.headers.get('location')).toMatch(/^\/agent\/sign-in/);
    // And signing in again finds no one for that email.
    expect((await signIn(s, 'alice')).res.status).toBe(403);
  });

  it('says so on a page when the provider cannot be reached, and asks again later', async () => {
    const down = await freePort();
    const s = await setup({ issuer: `http://127.0.0.1:${down}` });
    const res = await get(`${s.base}/agent/sign-in/oidc`, s.jar);
    expect(res.status).toBe(502);
    const text = await res.text();
    expect(text).toContain('RELAY_ERR_SIGN_IN_PROVIDER');
    expect(text).toContain('Try again in a few minutes');
    expect(text).not.toMatch(/at \w+ \(|node:internal/);
    // Not a failure kept for good: once the provider is up the same relay finds it.
    idp = await new OidcServer().start(`${s.base}/agent/oidc/callback`, down);
    const up = await get(`${s.base}/agent/sign-in/oidc`, s.jar);
    expect(up.status).toBe(303);
    expect(up.headers.get('location')).toMatch(new RegExp(`^${idp.issuer}/`));
  });

  it('says so on a page when the issuer answers something that is not OpenID Connect', async () => {
    const nonsense = createServer((_req, res) => res.end('<html>a parked domain</html>'));
    await new Promise<void>((r) => nonsense.listen(0, '127.0.0.1', r));
    try {
      const s = await setup({
        issuer: `http://127.0.0.1:${(nonsense.address() as AddressInfo).port}`,
      });
      const res = await get(`${s.base}/agent/sign-in/oidc`, s.jar);
      expect(res.status).toBe(502);
      expect(await codeOf(res)).toBe('RELAY_ERR_SIGN_IN_PROVIDER');
    } finally {
      nonsense.closeAllConnections();
      await new Promise((r) => nonsense.close(r));
    }
  });

  it('turns the agent pages off without an admin token', async () => {
    const dir = tempDir();
    const file = writeRelayYaml(dir, { more: directory() });
    writeFileSync(file, readFileSync(file, 'utf8').replace(/admin:\n {2}token: .*\n/, ''));
    relay = await startRelay(loadConfig(file, {}));
    const res = await fetch(`http://127.0.0.1:${relay.port}/agent/sign-in`);
    expect(res.status).toBe(403);
    expect(await res.text()).toContain('The agent pages are off');
  });
});

describe("the admin's side of agent sign-in", () => {
  const browser = (base: string, cookie = ''): Record<string, string> => ({
    origin: base,
    'sec-fetch-site': 'same-origin',
    cookie,
  });

  it('Setup lists the agents and makes a link shown once; the CLI asks the running relay', async () => {
    const s = await setup();
    const signIn = await fetch(`${s.base}/console/sign-in`, {
      method: 'POST',
      redirect: 'manual',
      headers: browser(s.base),
      body: new URLSearchParams({ token: TOKENS.admin, next: '/console/setup' }),
    });
    expect(signIn.status).toBe(303);
    const admin = signIn.headers.get('set-cookie')!.split(';')[0]!;
    const setupPage = await (
      await fetch(`${s.base}/console/setup`, { headers: { cookie: admin } })
    ).text();
    expect(setupPage).toContain('<h2>Agents</h2>');
    expect(setupPage).toContain('Sign in with Test IdP');
    expect(setupPage).toContain('Alice@Example.com');
    expect(setupPage).toContain('action="/console/setup/agents/102/sign-in-link"');
    expect(setupPage).not.toContain(OIDC_CLIENT.secret);
    const csrf = /name="_csrf" value="([^"]+)"/.exec(setupPage)![1]!;

    const made = await fetch(`${s.base}/console/setup/agents/102/sign-in-link`, {
      method: 'POST',
      headers: browser(s.base, admin),
      body: new URLSearchParams({ _csrf: csrf }),
    });
    expect(made.status).toBe(200);
    const shown = await made.text();
    const link = /id="sign-in-link">([^<]+)</.exec(shown)![1]!;
    expect(link.startsWith(`${s.base}/agent/welcome?t=`)).toBe(true);
    // Without the CSRF token, none.
    const forged = await fetch(`${s.base}/console/setup/agents/102/sign-in-link`, {
      method: 'POST',
      headers: browser(s.base, admin),
      body: new URLSearchParams({}),
    });
    expect(forged.status).toBe(403);
    // Nor for someone not in the directory.
    const nobody = await fetch(`${s.base}/console/setup/agents/999/sign-in-link`, {
      method: 'POST',
      headers: browser(s.base, admin),
      body: new URLSearchParams({ _csrf: csrf }),
    });
    expect(nobody.status).toBe(404);

    const use = (t: string): Promise<Response> =>
      fetch(`${s.base}/agent/welcome`, {
        method: 'POST',
        redirect: 'manual',
        headers: browser(s.base),
        body: new URLSearchParams({ t }),
      });
    const bob = await use(new URL(link).searchParams.get('t')!);
    expect(bob.status).toBe(303);
    const bobCookie = bob.headers.get('set-cookie')!.split(';')[0]!;
    expect(
      await (await fetch(`${s.base}/agent`, { headers: { cookie: bobCookie } })).text(),
    ).toContain('Bob (102)');

    // The command line: the same link, made by the relay that keeps its hash.
    const run = promisify(execFile);
    const cli = await run(
      process.execPath,
      [MAIN, 'agent-link', '--config', s.file, '--extension', '101', '--hours', '2'],
      { env: { PATH: process.env.PATH } },
    );
    const printed = cli.stdout.trim();
    expect(printed.startsWith(`${s.base}/agent/welcome?t=`)).toBe(true);
    expect(cli.stderr).toMatch(/signs in extension 101 once, until 20\d\d-/);
    expect((await use(new URL(printed).searchParams.get('t')!)).status).toBe(303);
    const unknown = await run(
      process.execPath,
      [MAIN, 'agent-link', '--config', s.file, '--extension', '999'],
      { env: { PATH: process.env.PATH } },
    ).catch((err: { code: number; stderr: string }) => err);
    expect((unknown as { code: number }).code).toBe(2);
  });
});

describe('auth.oidc in relay.yaml', () => {
  const problems = (server: string, oidc: string, token = true): string => {
    const file = writeRelayYaml(tempDir(), { server, more: `auth:\n  oidc:\n${oidc}` });
    if (!token)
      writeFileSync(file, readFileSync(file, 'utf8').replace(/admin:\n {2}token: .*\n/, ''));
    try {
      loadConfig(file, {});
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
    return '';
  };
  const oidc = (issuer: string): string =>
    `    issuer: ${issuer}\n    clientId: relay\n    clientSecret: s3cret-value-of-the-client\n`;

  it('refuses an email listed twice in agents:, in any letters, at its place', () => {
    const file = writeRelayYaml(tempDir(), {
      more:
        'agents:\n  - { extension: "101", email: alice@example.com }\n' +
        '  - { extension: "102", email: Alice@Example.COM }\n',
    });
    expect(() => loadConfig(file, {})).toThrow(
      /relay\.yaml:\d+:\d+ agents\.1\.email: email "Alice@Example\.COM" is listed twice \(also entry 1\)/,
    );
  });

  it('names what company sign-in needs, where it is missing', () => {
    expect(problems('', oidc('https://accounts.google.com'))).toMatch(
      /relay\.yaml:\d+:\d+ company sign-in needs server\.publicUrl/,
    );
    expect(
      problems('  publicUrl: https://relay.example.com\n', oidc('http://idp.example.com'), true),
    ).toMatch(/relay\.yaml:\d+:\d+ the issuer must be https/);
    expect(
      problems(
        '  publicUrl: https://relay.example.com\n  urlSecret: a-link-secret-of-at-least-32-characters\n',
        oidc('https://accounts.google.com'),
        false,
      ),
    ).toMatch(/needs admin\.token/);
    expect(
      problems('  publicUrl: https://relay.example.com\n', oidc('http://localhost:9000')),
    ).toBe('');
  });

  it('keeps the client secret among the secrets scrubbed from pages and logs', async () => {
    const { secretsOf } = await import('../../src/config/secrets.js');
    const file = writeRelayYaml(tempDir(), {
      server: '  publicUrl: https://relay.example.com\n',
      more: `auth:\n  oidc:\n${oidc('https://accounts.google.com')}`,
    });
    const cfg = loadConfig(file, {});
    expect(cfg.oidc?.redirectUri).toBe('https://relay.example.com/agent/oidc/callback');
    expect(secretsOf(cfg)).toContain('s3cret-value-of-the-client');
  });
});
