#!/usr/bin/env node
/*
 * Drive the official mParticle Web SDK (@mparticle/web-sdk, dist/mparticle.js from node_modules)
 * in headless Chromium (playwright-core + /usr/bin/chromium) against an opencdp server.
 *
 *   node web_sdk_page.js --base-url http://127.0.0.1:8080 --api-key KEY [--request-config true|false]
 *   node web_sdk_page.js http://127.0.0.1:8080 KEY false          (positional form)
 *   OPENCDP_BASE_URL=... OPENCDP_API_KEY=... OPENCDP_REQUEST_CONFIG=false node web_sdk_page.js
 *
 * Flow: a tiny node http server on another port (= a different origin than the opencdp server)
 * serves an HTML page that loads the SDK bundle and calls mParticle.init(apiKey, config) with the
 * URL options pointed at opencdp, identifyRequest {email, customerid}; then logs a custom event, a
 * page view and a purchase, sets user attributes, optionally logs in a second user and aliases the
 * first one to it (--alias), forces an upload and waits until the network is quiet.
 * Prints ONE JSON object on stdout (see README in docs/sdk-clients.md) and exits
 *   0  identify returned an MPID and every request to the server got a 2xx/expected answer
 *   1  the SDK flow did not fully succeed (identify failed, an upload failed, queue not drained...)
 *   2  the harness itself failed (bad arguments, chromium could not start, ...)
 *
 * The Web SDK ALWAYS uses https:// for /config and /Alias (configAPIClient.ts, identityApiClient.ts
 * hard-code it; forceHttps only affects events + identity). Against a plain-http server the harness
 * therefore starts a small TLS reverse proxy (self-signed cert made with `openssl`, Chromium told to
 * ignore certificate errors) and points configUrl / aliasUrl / userAudienceUrl / v1SecureServiceUrl
 * (per-event forwarding stats, also hard-coded https) at it. The proxy
 * forwards every request unchanged (incl. OPTIONS preflights and the Origin header) to --base-url.
 * --https-base https://host:port   use that TLS endpoint instead of the built-in proxy
 * --https-base none                point config/alias at the --base-url host anyway (will fail on http)
 *
 * No request interception (page.route) is used on purpose: Playwright auto-answers CORS preflights
 * when any route is installed, which would hide the server's CORS behaviour.
 */
'use strict';

const http = require('http');
const https = require('https');
const fs = require('fs');
const os = require('os');
const path = require('path');
const crypto = require('crypto');
const { execFileSync } = require('child_process');

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-quic',
  '--no-first-run',
  '--disable-component-update',
  '--disable-sync',
];

// ------------------------------------------------------------------------------------------------
// arguments

function parseBool(v, dflt) {
  if (v === undefined || v === null || v === '') return dflt;
  if (typeof v === 'boolean') return v;
  const s = String(v).trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(s)) return true;
  if (['0', 'false', 'no', 'off'].includes(s)) return false;
  throw new Error('not a boolean: ' + v);
}

function parseArgs(argv) {
  const flags = {};
  const positional = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      if (eq > 0) {
        flags[a.slice(2, eq)] = a.slice(eq + 1);
      } else {
        const next = argv[i + 1];
        if (next !== undefined && !next.startsWith('--')) {
          flags[a.slice(2)] = next;
          i++;
        } else {
          flags[a.slice(2)] = 'true';
        }
      }
    } else {
      positional.push(a);
    }
  }
  const env = process.env;
  const pick = (flag, envName, pos, dflt) => {
    if (flags[flag] !== undefined) return flags[flag];
    if (env[envName] !== undefined && env[envName] !== '') return env[envName];
    if (pos !== null && positional[pos] !== undefined) return positional[pos];
    return dflt;
  };
  const rnd = crypto.randomBytes(4).toString('hex');
  const o = {
    baseUrl: pick('base-url', 'OPENCDP_BASE_URL', 0, null),
    apiKey: pick('api-key', 'OPENCDP_API_KEY', 1, null),
    requestConfig: parseBool(pick('request-config', 'OPENCDP_REQUEST_CONFIG', 2, 'true'), true),
    httpsBase: pick('https-base', 'OPENCDP_HTTPS_BASE_URL', null, 'proxy'),
    email: pick('email', 'OPENCDP_EMAIL', null, `web-harness-${rnd}@example.com`),
    customerid: pick('customerid', 'OPENCDP_CUSTOMERID', null, `web-cust-${rnd}`),
    alias: parseBool(pick('alias', 'OPENCDP_ALIAS', null, 'false'), false),
    development: parseBool(pick('development', 'OPENCDP_DEVELOPMENT', null, 'false'), false),
    timeoutMs: Number(pick('timeout', 'OPENCDP_TIMEOUT_MS', null, '30000')),
    settleMs: Number(pick('settle', 'OPENCDP_SETTLE_MS', null, '1500')),
    logLevel: pick('log-level', 'OPENCDP_SDK_LOG_LEVEL', null, 'warning'),
    chromium: pick('chromium', 'CHROMIUM_PATH', null, '/usr/bin/chromium'),
    captureBodies: parseBool(pick('capture-bodies', 'OPENCDP_CAPTURE_BODIES', null, 'false'), false),
    blockExternal: parseBool(pick('block-external', 'OPENCDP_BLOCK_EXTERNAL', null, 'true'), true),
    pretty: parseBool(flags.pretty, false),
    help: flags.help !== undefined || flags.h !== undefined,
  };
  return o;
}

const USAGE = `usage: node web_sdk_page.js --base-url URL --api-key KEY [options]
  --base-url URL          opencdp base, e.g. http://127.0.0.1:8080   (env OPENCDP_BASE_URL, or 1st positional)
  --api-key KEY           workspace API key                          (env OPENCDP_API_KEY, or 2nd positional)
  --request-config BOOL   let the SDK GET /config (default true)      (env OPENCDP_REQUEST_CONFIG, or 3rd positional)
  --https-base VALUE      proxy (default) | none | https://host:port  TLS endpoint for /config and /Alias
  --email E --customerid C  identities for identifyRequest (default: random)
  --alias BOOL            after the events, login a 2nd customerid and alias user1 -> user2 (default false)
  --development BOOL      isDevelopmentMode (default false)
  --timeout MS            overall deadline (default 30000)   --settle MS  network-quiet period (default 1500)
  --log-level L           SDK logLevel: verbose|warning|error|none (default warning)
  --capture-bodies BOOL   include request bodies (parsed JSON) in the output (default false)
  --block-external BOOL   resolve every host except the server/loopback to NOTFOUND (default true)
  --chromium PATH         default /usr/bin/chromium          --pretty  indent the JSON`;

// ------------------------------------------------------------------------------------------------
// helpers

function listen(server, host) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve(server.address().port));
  });
}

function closeServer(server) {
  return new Promise((resolve) => {
    if (!server) return resolve();
    if (server.closeAllConnections) server.closeAllConnections();
    server.close(() => resolve());
  });
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function webSdkBundlePath() {
  const pkgJson = require.resolve('@mparticle/web-sdk/package.json');
  return path.join(path.dirname(pkgJson), 'dist', 'mparticle.js');
}

function webSdkVersion() {
  return require('@mparticle/web-sdk/package.json').version;
}

/** Self-signed cert for 127.0.0.1/localhost, generated with the openssl CLI into a temp dir. */
function makeSelfSignedCert() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'opencdp-harness-tls-'));
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
    { stdio: 'ignore' },
  );
  const out = { key: fs.readFileSync(key), cert: fs.readFileSync(cert) };
  fs.rmSync(dir, { recursive: true, force: true });
  return out;
}

/**
 * TLS reverse proxy -> target (http or https). Passes method, path, headers (Origin included) and
 * body through; rewrites Host; adds X-Forwarded-*. Upstream connection errors are surfaced to the
 * browser as a reset connection (= what an unreachable server looks like).
 */
async function startTlsProxy(targetBase, log) {
  const target = new URL(targetBase);
  const tls = makeSelfSignedCert();
  const client = target.protocol === 'https:' ? https : http;
  const server = https.createServer(tls, (req, res) => {
    const entry = { method: req.method, path: req.url, origin: req.headers.origin || null, status: null, error: null };
    log.push(entry);
    const headers = { ...req.headers, host: target.host, 'x-forwarded-proto': 'https', 'x-forwarded-host': req.headers.host };
    const up = client.request(
      {
        protocol: target.protocol,
        hostname: target.hostname,
        port: target.port || (target.protocol === 'https:' ? 443 : 80),
        method: req.method,
        path: req.url,
        headers,
        rejectUnauthorized: false,
      },
      (ur) => {
        entry.status = ur.statusCode;
        res.writeHead(ur.statusCode, ur.statusMessage, ur.rawHeaders);
        ur.pipe(res);
      },
    );
    up.on('error', (e) => {
      entry.error = e.code || e.message;
      req.socket.destroy();
    });
    req.pipe(up);
  });
  const port = await listen(server, '127.0.0.1');
  return { server, origin: `https://127.0.0.1:${port}` };
}

function hostPath(base) {
  // "http://h:p/prefix/" -> "h:p/prefix" (no scheme, no trailing slash), as the SDK concatenates
  const u = new URL(base);
  return u.host + u.pathname.replace(/\/+$/, '');
}

/** The init config: every URL option is "host[:port]/path/" WITHOUT scheme, WITH trailing slash. */
function buildSdkConfig(o, plainHP, tlsHP) {
  return {
    isDevelopmentMode: o.development,
    requestConfig: o.requestConfig,
    forceHttps: false,
    logLevel: o.logLevel,
    // events, identity, batched forwarding stats: createServiceUrl() -> page scheme (http) since
    // forceHttps is false
    v2SecureServiceUrl: `${plainHP}/webevents/v2/JS/`,
    v3SecureServiceUrl: `${plainHP}/webevents/v3/JS/`,
    identityUrl: `${plainHP}/identity/v1/`,
    // hard-coded https:// in the SDK (config, alias, audience, per-event forwarding stats) -> TLS endpoint
    v1SecureServiceUrl: `${tlsHP}/webevents/v1/JS/`,
    configUrl: `${tlsHP}/tags/JS/v2/`,
    aliasUrl: `${tlsHP}/webevents/v1/identity/`,
    userAudienceUrl: `${tlsHP}/nativeevents/v1/`,
    identifyRequest: { userIdentities: { email: o.email, customerid: o.customerid } },
    appName: 'opencdp-web-harness',
    appVersion: '1.0.0',
    package: 'dev.opencdp.harness',
  };
}

// ------------------------------------------------------------------------------------------------
// the page

const PAGE_SCRIPT = String.raw`
(function () {
  var H = (window.__harness = { steps: [], identify: null, login: null, alias: null, errors: [] });
  function step(name, data) { H.steps.push({ name: name, t: Date.now(), data: data === undefined ? null : data }); }
  function userInfo(u) {
    if (!u) return null;
    try { return { mpid: u.getMPID(), isLoggedIn: u.isLoggedIn(), identities: u.getUserIdentities().userIdentities }; }
    catch (e) { return { error: String(e) }; }
  }
  function withTimeout(p, ms, what) {
    return Promise.race([p, new Promise(function (res) { setTimeout(function () { res({ timeout: what }); }, ms); })]);
  }

  window.__harnessInit = function (apiKey, config, ms) {
    return withTimeout(new Promise(function (resolve) {
      config.identityCallback = function (r) {
        H.identify = { httpCode: r.httpCode, body: r.body === undefined ? null : r.body, user: userInfo(r.getUser && r.getUser()) };
        step('identityCallback', { httpCode: r.httpCode });
        resolve(H.identify);
      };
      step('init');
      mParticle.init(apiKey, config);
    }), ms, 'identify');
  };

  window.__harnessEvents = function () {
    step('events');
    mParticle.logEvent('harness custom event', mParticle.EventType.Navigation, { source: 'opencdp-harness', n: 1 });
    mParticle.logPageView('harness page view', { page: '/harness' });
    var p = mParticle.eCommerce.createProduct('Harness Widget', 'sku-harness-1', 9.99, 2);
    var ta = mParticle.eCommerce.createTransactionAttributes('txn-harness-1', 'harness', null, 19.98, 0, 0);
    mParticle.eCommerce.logProductAction(mParticle.ProductActionType.Purchase, [p], { channel: 'web' }, null, ta);
    var u = mParticle.Identity.getCurrentUser();
    if (u) {
      u.setUserAttribute('harness_attr', 'value-1');
      u.setUserAttributeList('harness_list', ['a', 'b']);
      step('userAttributes', { mpid: u.getMPID() });
    } else {
      step('userAttributes', { skipped: 'no current user' });
    }
    mParticle.logEvent('harness after attributes', mParticle.EventType.Other, { n: 2 });
    mParticle.upload();
    return true;
  };

  window.__harnessLoginAndAlias = function (identities, ms) {
    return withTimeout(new Promise(function (resolve) {
      step('login');
      mParticle.Identity.login({ userIdentities: identities }, function (r) {
        var prev = r.getPreviousUser ? r.getPreviousUser() : null;
        var cur = r.getUser ? r.getUser() : null;
        H.login = { httpCode: r.httpCode, body: r.body === undefined ? null : r.body, user: userInfo(cur), previousUser: userInfo(prev) };
        if (!prev || !cur || prev.getMPID() === cur.getMPID()) {
          H.alias = { skipped: 'login did not switch to a different MPID' };
          return resolve(H);
        }
        var req = mParticle.Identity.createAliasRequest(prev, cur);
        step('alias', req);
        mParticle.Identity.aliasUsers(req, function (ar) {
          H.alias = { request: req, httpCode: ar.httpCode, message: ar.message === undefined ? null : ar.message };
          resolve(H);
        });
      });
    }), ms, 'login/alias');
  };

  window.__harnessState = function () {
    var inst = mParticle.getInstance();
    var st = inst && inst._Store;
    var cfg = (st && st.SDKConfig) || {};
    var up = inst && inst._APIClient && inst._APIClient.uploader;
    var cu = mParticle.Identity.getCurrentUser();
    return {
      sdkVersion: mParticle.getVersion ? mParticle.getVersion() : null,
      isInitialized: !!(st && st.isInitialized),
      configurationLoaded: !!(st && st.configurationLoaded),
      mpid: cu ? cu.getMPID() : null,
      currentUser: userInfo(cu),
      userAttributes: cu ? cu.getAllUserAttributes() : null,
      deviceId: mParticle.getDeviceId ? mParticle.getDeviceId() : null,
      sessionId: st ? st.sessionId : null,
      baseUrls: {
        v1SecureServiceUrl: cfg.v1SecureServiceUrl, v2SecureServiceUrl: cfg.v2SecureServiceUrl,
        v3SecureServiceUrl: cfg.v3SecureServiceUrl, identityUrl: cfg.identityUrl, aliasUrl: cfg.aliasUrl,
        configUrl: cfg.configUrl, userAudienceUrl: cfg.userAudienceUrl,
      },
      forceHttps: cfg.forceHttps,
      flags: cfg.flags || null,
      workspaceToken: cfg.workspaceToken || null,
      eventsUploadUrl: up ? up.uploadUrl : null,
      pending: {
        readyQueue: inst && inst._preInit && inst._preInit.readyQueue ? inst._preInit.readyQueue.length : null, // API calls made before init completed
        eventQueue: st && st.eventQueue ? st.eventQueue.length : null,            // waiting for MPID/config
        uploaderEvents: up ? up.eventsQueuedForProcessing.length : null,         // not yet batched
        uploaderBatches: up ? up.batchesQueuedForProcessing.length : null,       // failed/retrying
      },
    };
  };
})();
`;

function pageHtml(apiKey, sdkConfig) {
  const esc = (obj) => JSON.stringify(obj).replace(/</g, '\\u003c');
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>opencdp web sdk harness</title>
<link rel="icon" href="data:,">
<script>window.__HARNESS = ${esc({ apiKey, sdkConfig })};</script>
<script src="/mparticle.js"></script>
<script>${PAGE_SCRIPT}</script>
</head><body><h1 id="title">opencdp web sdk harness</h1></body></html>`;
}

async function startPageServer(apiKey, sdkConfig) {
  const bundle = fs.readFileSync(webSdkBundlePath());
  const html = pageHtml(apiKey, sdkConfig);
  const server = http.createServer((req, res) => {
    const p = req.url.split('?')[0];
    if (p === '/' || p === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(html);
    } else if (p === '/mparticle.js') {
      res.writeHead(200, { 'content-type': 'application/javascript; charset=utf-8', 'cache-control': 'no-store' });
      res.end(bundle);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
    }
  });
  const port = await listen(server, '127.0.0.1');
  return { server, origin: `http://127.0.0.1:${port}` };
}

// ------------------------------------------------------------------------------------------------
// classify requests

function classify(url) {
  let u;
  try { u = new URL(url); } catch (e) { return 'other'; }
  const p = u.pathname;
  if (/\/config$/.test(p)) return 'config';
  if (/\/Alias$/i.test(p)) return 'alias';
  if (/\/events$/.test(p)) return 'events';
  if (/\/Forwarding$/.test(p)) return 'forwarding';
  if (/\/audience$/.test(p)) return 'audience';
  if (/\/(identify|login|logout|modify|search)$/.test(p)) return 'identity:' + p.split('/').pop();
  return 'other';
}

function summarizeBody(kind, text, captureBodies) {
  if (text === null || text === undefined) return null;
  let parsed;
  try { parsed = JSON.parse(text); } catch (e) { return captureBodies ? { raw: text } : { unparsable: true }; }
  if (captureBodies) return parsed;
  if (kind === 'events') {
    return {
      source_request_id: parsed.source_request_id,
      mpid: parsed.mpid,
      environment: parsed.environment,
      event_types: (parsed.events || []).map((e) => e.event_type + (e.data && e.data.event_name ? ':' + e.data.event_name : '')),
      user_identities: parsed.user_identities,
      user_attributes: parsed.user_attributes,
    };
  }
  if (kind.startsWith('identity:')) {
    return { known_identities: parsed.known_identities, previous_mpid: parsed.previous_mpid, identity_changes: parsed.identity_changes };
  }
  if (kind === 'alias') return parsed;
  return null;
}

// ------------------------------------------------------------------------------------------------
// main

async function run(o) {
  const result = {
    ok: false,
    sdk: { package: '@mparticle/web-sdk', version: webSdkVersion(), bundle: 'dist/mparticle.js' },
    input: { baseUrl: o.baseUrl, apiKey: o.apiKey, requestConfig: o.requestConfig, email: o.email, customerid: o.customerid, alias: o.alias, development: o.development },
    pageOrigin: null,
    httpsBase: null,
    initConfig: null,
    mpid: null,
    identify: null,
    login: null,
    alias: null,
    state: null,
    expectedUrls: null,
    requests: [],
    tlsProxyLog: null,
    consoleErrors: [],
    consoleWarnings: [],
    pageErrors: [],
    problems: [],
    durationMs: 0,
  };
  const t0 = Date.now();
  const deadline = t0 + o.timeoutMs;
  const remaining = () => Math.max(500, deadline - Date.now());

  let proxy = null;
  let pageSrv = null;
  let browser = null;
  try {
    // TLS endpoint for the always-https URLs (/config, /Alias, audience)
    let tlsBase;
    if (o.httpsBase === 'proxy') {
      if (new URL(o.baseUrl).protocol === 'https:') {
        tlsBase = o.baseUrl;
      } else {
        result.tlsProxyLog = [];
        try {
          proxy = await startTlsProxy(o.baseUrl, result.tlsProxyLog);
          tlsBase = proxy.origin + new URL(o.baseUrl).pathname.replace(/\/+$/, '');
        } catch (e) {
          result.problems.push('could not start the TLS proxy (is openssl installed?): ' + e.message + ' -- falling back to https-base=none');
          tlsBase = o.baseUrl;
        }
      }
    } else if (o.httpsBase === 'none') {
      tlsBase = o.baseUrl;
    } else {
      tlsBase = o.httpsBase;
    }
    result.httpsBase = tlsBase;

    const plainHP = hostPath(o.baseUrl);
    const tlsHP = hostPath(tlsBase);
    const sdkConfig = buildSdkConfig(o, plainHP, tlsHP);
    result.initConfig = sdkConfig;

    pageSrv = await startPageServer(o.apiKey, sdkConfig);
    result.pageOrigin = pageSrv.origin;
    const pageScheme = new URL(pageSrv.origin).protocol; // 'http:'
    result.expectedUrls = {
      config: o.requestConfig ? `https://${sdkConfig.configUrl}${o.apiKey}/config?env=${o.development ? 1 : 0}` : null,
      identify: `${pageScheme}//${sdkConfig.identityUrl}identify`,
      login: `${pageScheme}//${sdkConfig.identityUrl}login`,
      events: `${pageScheme}//${sdkConfig.v3SecureServiceUrl}${o.apiKey}/events`,
      alias: `https://${sdkConfig.aliasUrl}${o.apiKey}/Alias`,
    };

    const args = CHROMIUM_ARGS.slice();
    if (o.blockExternal) {
      const allowed = new Set(['127.0.0.1', 'localhost', new URL(o.baseUrl).hostname, new URL(tlsBase).hostname]);
      const rules = ['MAP * ~NOTFOUND'].concat([...allowed].map((h) => 'EXCLUDE ' + h));
      args.push('--host-resolver-rules=' + rules.join(', '));
    }
    let chromium;
    try {
      ({ chromium } = require('playwright-core'));
    } catch (e) {
      throw Object.assign(new Error('playwright-core not installed: run scripts/setup-browser.sh'), { harness: true });
    }
    try {
      browser = await chromium.launch({ executablePath: o.chromium, args, timeout: 30000 });
    } catch (e) {
      throw Object.assign(new Error('chromium launch failed (run scripts/setup-browser.sh): ' + e.message), { harness: true });
    }
    result.browserVersion = browser.version();
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();

    // --- observe the network (no interception!) -------------------------------------------------
    let lastActivity = Date.now();
    const inflight = new Map();
    page.on('request', (req) => {
      if (req.url().startsWith(pageSrv.origin)) return;
      lastActivity = Date.now();
      const kind = classify(req.url());
      const rec = {
        kind,
        method: req.method(),
        url: req.url(),
        status: null,
        failure: null,
        requestHeaders: null,
        body: summarizeBody(kind, req.postData(), o.captureBodies),
        responseHeaders: null,
        startedMs: Date.now() - t0,
        durationMs: null,
      };
      result.requests.push(rec);
      inflight.set(req, rec);
      req.allHeaders().then((h) => { rec.requestHeaders = h; }).catch(() => {});
    });
    // 'response' fires when the headers arrive. Chromium reports requests whose body the page never
    // reads (events, Alias: the SDK only looks at the status) as requestfailed net::ERR_ABORTED
    // afterwards, so the status is taken from here and such an abort is not counted as a failure.
    page.on('response', async (resp) => {
      const rec = inflight.get(resp.request());
      if (!rec) return;
      rec.status = resp.status();
      lastActivity = Date.now();
      try { rec.responseHeaders = await resp.allHeaders(); } catch (e) { /* page closed */ }
    });
    page.on('requestfinished', async (req) => {
      const rec = inflight.get(req);
      if (!rec) return;
      try {
        const resp = await req.response();
        rec.status = resp ? resp.status() : null;
        if (resp) rec.responseHeaders = await resp.allHeaders();
      } catch (e) { /* page closed */ }
      rec.durationMs = Date.now() - t0 - rec.startedMs;
      inflight.delete(req);
      lastActivity = Date.now();
    });
    page.on('requestfailed', (req) => {
      const rec = inflight.get(req);
      if (!rec) return;
      const err = (req.failure() && req.failure().errorText) || 'failed';
      if (rec.status !== null && err === 'net::ERR_ABORTED') rec.bodyAborted = true;
      else rec.failure = err;
      rec.durationMs = Date.now() - t0 - rec.startedMs;
      inflight.delete(req);
      lastActivity = Date.now();
    });
    page.on('console', (msg) => {
      const entry = { type: msg.type(), text: msg.text() };
      if (msg.type() === 'error') result.consoleErrors.push(entry.text);
      else if (msg.type() === 'warning') result.consoleWarnings.push(entry.text);
    });
    page.on('pageerror', (err) => result.pageErrors.push(String(err && err.stack ? err.stack : err)));

    async function settle() {
      while (Date.now() < deadline) {
        if (inflight.size === 0 && Date.now() - lastActivity >= o.settleMs) return true;
        await sleep(100);
      }
      return false;
    }

    // --- drive the SDK ----------------------------------------------------------------------------
    await page.goto(pageSrv.origin + '/', { waitUntil: 'load', timeout: remaining() });
    const loaded = await page.evaluate(() => typeof window.mParticle === 'object' && typeof window.mParticle.init === 'function');
    if (!loaded) throw Object.assign(new Error('Web SDK bundle did not load in the page'), { harness: true });

    const ident = await page.evaluate(
      ([key, cfg, ms]) => window.__harnessInit(key, cfg, ms),
      [o.apiKey, sdkConfig, Math.max(1000, remaining() - 2000)],
    );
    result.identify = ident;
    if (ident && ident.timeout) result.problems.push('identify callback never fired (timeout)');
    else if (ident && ident.httpCode !== 200) result.problems.push('identify returned httpCode ' + ident.httpCode);

    await page.evaluate(() => window.__harnessEvents());
    await settle();

    if (o.alias) {
      const loginIds = { email: 'second-' + o.email, customerid: o.customerid + '-second' };
      const la = await page.evaluate(([ids, ms]) => window.__harnessLoginAndAlias(ids, ms), [loginIds, Math.max(1000, remaining() - 2000)]);
      if (la && la.timeout) {
        result.problems.push('login/alias callback never fired (timeout)');
      } else {
        result.login = la.login;
        result.alias = la.alias;
        if (la.login && la.login.httpCode !== 200) result.problems.push('login returned httpCode ' + la.login.httpCode);
        if (la.alias && la.alias.skipped) result.problems.push('alias skipped: ' + la.alias.skipped);
        else if (la.alias && la.alias.httpCode !== 200 && la.alias.httpCode !== 202) result.problems.push('alias returned httpCode ' + la.alias.httpCode);
      }
      await page.evaluate(() => { mParticle.logEvent('harness after login', mParticle.EventType.Other); mParticle.upload(); });
      await settle();
    }

    await page.evaluate(() => mParticle.upload());
    const quiet = await settle();
    if (!quiet) result.problems.push('network did not go quiet before the deadline');

    result.state = await page.evaluate(() => window.__harnessState());
    result.mpid = result.state.mpid;
    result.harnessSteps = await page.evaluate(() => window.__harness.steps);

    // --- verdict ----------------------------------------------------------------------------------
    const pend = result.state.pending;
    if (pend.readyQueue) result.problems.push(`${pend.readyQueue} SDK call(s) still waiting for init to complete (readyQueue)`);
    if (pend.eventQueue) result.problems.push(`${pend.eventQueue} event(s) still queued in the SDK waiting for an MPID/config`);
    if (pend.uploaderEvents || pend.uploaderBatches) result.problems.push(`uploader still holds ${pend.uploaderEvents} event(s) / ${pend.uploaderBatches} batch(es) (upload failed, will retry)`);
    const evReqs = result.requests.filter((r) => r.kind === 'events');
    if (result.mpid && evReqs.length === 0) result.problems.push('no event batch was uploaded');
    for (const r of result.requests) {
      if (r.kind === 'config') continue; // optional: SDK falls back to the init config
      if (r.failure) result.problems.push(`${r.kind} ${r.method} ${r.url} failed: ${r.failure}`);
      else if (r.status !== null && (r.status < 200 || r.status > 299)) result.problems.push(`${r.kind} ${r.method} ${r.url} -> HTTP ${r.status}`);
    }
    const cfgReq = result.requests.find((r) => r.kind === 'config');
    result.config = o.requestConfig
      ? { requested: !!cfgReq, url: cfgReq ? cfgReq.url : null, status: cfgReq ? cfgReq.status : null, failure: cfgReq ? cfgReq.failure : null, loadedFromServer: !!(cfgReq && cfgReq.status === 200) }
      : { requested: !!cfgReq };
    if (o.requestConfig && cfgReq && cfgReq.status !== 200) result.problems.push(`config not loaded (status ${cfgReq.status}, failure ${cfgReq.failure}); SDK continued with the init config`);
    result.ok = !!result.mpid && result.problems.length === 0 && result.pageErrors.length === 0;

    await context.close();
  } finally {
    result.durationMs = Date.now() - t0;
    if (browser) await browser.close().catch(() => {});
    await closeServer(pageSrv && pageSrv.server);
    await closeServer(proxy && proxy.server);
  }
  return result;
}

async function main() {
  let o;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(e.message + '\n' + USAGE + '\n');
    process.exit(2);
  }
  if (o.help) {
    process.stdout.write(USAGE + '\n');
    return;
  }
  if (!o.baseUrl || !o.apiKey) {
    process.stderr.write('missing --base-url and/or --api-key\n' + USAGE + '\n');
    process.exit(2);
  }
  try {
    new URL(o.baseUrl);
  } catch (e) {
    process.stderr.write('bad --base-url: ' + o.baseUrl + '\n');
    process.exit(2);
  }
  let result;
  let code;
  try {
    result = await run(o);
    code = result.ok ? 0 : 1;
  } catch (e) {
    result = { ok: false, harnessError: String(e && e.message ? e.message : e), stack: e && e.stack ? String(e.stack) : null };
    code = 2;
  }
  process.stdout.write(JSON.stringify(result, null, o.pretty ? 2 : 0) + '\n');
  process.exitCode = code;
}

if (require.main === module) {
  main();
}

module.exports = { parseArgs, buildSdkConfig, classify, run };
