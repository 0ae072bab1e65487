#!/usr/bin/env node
/*
 * Wire recorder: a throw-away loopback endpoint used to self-check the SDK harness scripts and to
 * capture exactly what the official SDKs put on the wire. It is NOT opencdp and NOT a reference
 * implementation: its answers are the bare minimum the SDK code paths need (see docs/sdk-clients.md).
 *
 *   node wire_recorder.js [--port 0] [--config-json '{"flags":{...}}'] [--no-cors]
 *   -> prints one line `{"listening": PORT}` on stdout, then serves until killed.
 *
 * Control endpoints (not SDK paths):
 *   GET    /__recorded  -> JSON array of every request seen: {method, path, headers, body}
 *   DELETE /__recorded  -> clear
 *   POST   /__next      -> body [{"status":429,"headers":{"Retry-After":"3"},"body":""}, ...]
 *                         queue of forced answers for the next non-OPTIONS, non-control requests
 */
'use strict';

const http = require('http');
const crypto = require('crypto');

function arg(name, dflt) {
  const i = process.argv.indexOf('--' + name);
  return i > 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : dflt;
}

const recorded = [];
let forced = [];
const extraConfig = JSON.parse(arg('config-json', '{}'));
const noCors = process.argv.includes('--no-cors'); // to check that the harness reports CORS failures

function mpidFor(known) {
  // stable per customerid/email; signed-64-bit-looking decimal string
  const seed = (known && (known.customerid || known.email || known.device_application_stamp)) || crypto.randomUUID();
  const h = crypto.createHash('sha256').update(String(seed)).digest();
  return h.readBigInt64BE(0).toString();
}

function cors(req) {
  if (noCors) return {};
  const h = {
    'Access-Control-Allow-Origin': req.headers.origin || '*',
    'Access-Control-Expose-Headers': 'x-mp-max-age',
    Vary: 'Origin',
  };
  return h;
}

function send(res, req, status, body, headers) {
  const h = Object.assign(cors(req), headers || {});
  let payload = '';
  if (body !== undefined && body !== null) {
    payload = typeof body === 'string' ? body : JSON.stringify(body);
    if (!h['Content-Type']) h['Content-Type'] = 'application/json';
  }
  res.writeHead(status, h);
  res.end(payload);
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const raw = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url, 'http://x');
    const p = url.pathname;

    if (p === '/__recorded') {
      if (req.method === 'DELETE') recorded.length = 0;
      return send(res, req, 200, req.method === 'DELETE' ? [] : recorded);
    }
    if (p === '/__next' && req.method === 'POST') {
      forced = forced.concat(JSON.parse(raw || '[]'));
      return send(res, req, 200, { queued: forced.length });
    }

    let body = null;
    try { body = raw ? JSON.parse(raw) : null; } catch (e) { body = { unparsable: raw }; }
    recorded.push({ method: req.method, path: req.url, headers: req.headers, body, t: Date.now() });

    if (req.method === 'OPTIONS') {
      return send(res, req, 204, null, {
        'Access-Control-Allow-Methods': 'GET, POST, OPTIONS',
        'Access-Control-Allow-Headers': req.headers['access-control-request-headers'] || 'Content-Type, x-mp-key',
        'Access-Control-Max-Age': '600',
      });
    }
    if (forced.length) {
      const f = forced.shift();
      return send(res, req, f.status, f.body === undefined ? '' : f.body, f.headers);
    }

    let m;
    if ((m = p.match(/\/identity\/v1\/(identify|login|logout|search)$/)) && req.method === 'POST') {
      const known = (body && body.known_identities) || {};
      return send(res, req, 200, {
        context: 'ctx-' + Date.now(),
        mpid: mpidFor(known),
        is_ephemeral: false,
        is_logged_in: !!known.customerid && m[1] !== 'logout',
        matched_identities: {},
      });
    }
    if (/\/identity\/v1\/-?\d+\/modify$/.test(p) && req.method === 'POST') {
      return send(res, req, 200, { change_results: [] });
    }
    if (/\/tags\/JS\/v2\/[^/]+\/config$/.test(p) && req.method === 'GET') {
      return send(res, req, 200, Object.assign({
        appName: 'wire-recorder',
        workspaceToken: 'WRKSPCE0',
        kitConfigs: [],
        pixelConfigs: [],
        flags: { eventBatchingIntervalMillis: '0', offlineStorage: '0' },
      }, extraConfig));
    }
    if (/\/Alias$/i.test(p) && req.method === 'POST') return send(res, req, 202, null);
    if (/\/(events|bulkevents|Forwarding)$/.test(p) && req.method === 'POST') return send(res, req, 202, null);
    return send(res, req, 404, { errors: [{ code: 'NOT_FOUND', message: 'wire recorder: no canned answer' }] });
  });
});

server.listen(Number(arg('port', '0')), '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ listening: server.address().port }) + '\n');
});
