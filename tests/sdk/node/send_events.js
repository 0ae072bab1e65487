#!/usr/bin/env node
/*
 * Upload Events API batches with the official mParticle Node SDK (npm `mparticle` 1.0.8).
 *
 *   node send_events.js job.json          # job from a file
 *   node send_events.js '{"baseUrl":...}' # job as a JSON string
 *   node send_events.js < job.json        # job from stdin (also: `node send_events.js -`)
 *
 * Job:
 *   {
 *     "baseUrl":   "http://127.0.0.1:8080",   server root; the SDK's ApiClient.basePath = baseUrl + "/v2"
 *     "basePath":  "http://127.0.0.1:8080/v2", optional, overrides baseUrl (exact SDK basePath)
 *     "apiKey":    "KEY", "apiSecret": "SECRET",
 *     "mode":      "both" | "single" | "bulk", default "both": every batch via uploadEvents(), then all
 *                  of them in one bulkUploadEvents() call
 *     "timeoutMs": 60000,                        superagent timeout (SDK default 60000)
 *     "echoPayload": false,                      add the JSON the SDK put on the wire to each result line
 *     "batches":   [ <batch>, ... ]              omitted or [] -> one built-in sample batch
 *   }
 *   <batch> is Events-API-shaped JSON, rebuilt with the SDK's model classes:
 *     { "environment": "development", "mpid": 123 | "123",
 *       "user_identities": {"customerid": "c1", "email": "a@b.c"},   <- SDK key names (customerid, other_id_2..)
 *       "user_attributes": {...}, "events": [{"event_type": "custom_event",
 *          "data": {"event_name": "x", "custom_event_type": "navigation", "custom_attributes": {...}}}, ...],
 *       any other top-level batch field (device_info, application_info, consent_state, context, ip,
 *       source_request_id, mp_deviceid, schema_version, deleted_user_attributes, integration_attributes)
 *       is copied as-is }
 *
 * Output (stdout): one JSON line per SDK call:
 *   {"call":"uploadEvents","index":0,"batches":1,"ok":true,"status":202,"error":null,"code":null,
 *    "retryAfter":null,"responseBody":"","warnings":[],"payload":<only with echoPayload>}
 *   call = "uploadEvents" (index = batch index) | "bulkUploadEvents" (index = null)
 *   network errors: ok=false, status=null, error=<message>, code=<ECONNREFUSED|ETIMEDOUT|...>
 * Exit code: 0 all calls 2xx, 1 some call failed, 2 bad job / harness error.
 */
'use strict';

process.noDeprecation = true; // the SDK's Configuration uses `new Buffer()` (DEP0005 warning on stderr)

const fs = require('fs');
const mParticle = require('mparticle');

// event_type -> SDK model class (constructor args taken from data)
const EVENT_CLASSES = {
  custom_event: (d) => new mParticle.AppEvent(d.custom_event_type || 'other', d.event_name),
  screen_view: (d) => new mParticle.ScreenViewEvent(d.screen_name),
  commerce_event: () => new mParticle.CommerceEvent(),
  session_start: () => new mParticle.SessionStartEvent(),
  session_end: () => new mParticle.SessionEndEvent(),
  crash_report: (d) => new mParticle.CrashReportEvent(d.class_name, d.message, d.stack_trace, d.exception_handled),
  opt_out: () => new mParticle.OptOutEvent(),
  first_run: () => new mParticle.FirstRunEvent(),
  application_state_transition: () => new mParticle.ApplicationStateTransitionEvent(),
  push_registration: () => new mParticle.PushRegistrationEvent(),
  push_message: () => new mParticle.PushMessageEvent(),
  network_performance: () => new mParticle.NetworkPerformanceEvent(),
  breadcrumb: () => new mParticle.BreadcrumbEvent(),
  profile: () => new mParticle.ProfileEvent(),
};

const KNOWN_IDENTITY_KEYS = Object.keys(mParticle.UserIdentities.prototype);

function buildProductAction(pa) {
  const action = new mParticle.ProductAction(pa.action, pa.transaction_id, pa.total_amount);
  Object.assign(action, pa);
  if (Array.isArray(pa.products)) {
    action.products = pa.products.map((p) => Object.assign(new mParticle.Product(p.id, p.name, p.price, p.total_product_amount), p));
  }
  return action;
}

function buildEvent(ev, warnings) {
  const type = ev.event_type;
  const data = ev.data || {};
  const make = EVENT_CLASSES[type];
  if (!make) {
    // no SDK model for it (e.g. user_attribute_change, user_identity_change): raw EventBase
    warnings.push(`event_type ${JSON.stringify(type)} has no Node SDK model class; sent as raw EventBase`);
    return new mParticle.EventBase(data, type);
  }
  const model = make(data);
  Object.assign(model, data);
  if (type === 'commerce_event' && data.product_action) model.product_action = buildProductAction(data.product_action);
  return model; // Batch.addEvent wraps it as {data, event_type: model.getEventType()}
}

function buildBatch(spec, warnings) {
  const batch = new mParticle.Batch(spec.environment || mParticle.Batch.Environment.development);
  for (const [k, v] of Object.entries(spec)) {
    if (k === 'environment' || k === 'events' || k === 'user_identities') continue;
    batch[k] = v;
  }
  if (spec.user_identities) {
    const ids = new mParticle.UserIdentities();
    for (const [k, v] of Object.entries(spec.user_identities)) {
      if (!KNOWN_IDENTITY_KEYS.includes(k)) warnings.push(`user_identities key ${JSON.stringify(k)} is not a Node SDK UserIdentities field`);
      ids[k] = v;
    }
    batch.user_identities = ids;
  }
  for (const ev of spec.events || []) {
    const built = buildEvent(ev, warnings);
    if (built instanceof mParticle.EventBase) {
      if (!batch.events) batch.events = [];
      batch.events.push(built);
    } else {
      batch.addEvent(built);
    }
  }
  if (typeof spec.mpid === 'number' && !Number.isSafeInteger(spec.mpid)) {
    warnings.push('mpid is a JS number beyond 2^53: precision already lost; pass it as a string');
  }
  return batch;
}

/** The README's example batch: custom event, screen view, session start/end, purchase, crash, consent. */
function sampleBatchSpec() {
  const now = Date.now();
  return {
    environment: 'development',
    user_identities: { customerid: 'node-sdk-customer-1', email: 'node-sdk@example.com' },
    user_attributes: { 'hair color': 'brown', plan: 'trial', tags: ['a', 'b'] },
    mp_deviceid: '59780f39-d7a0-4ebe-9950-280f937c29e2',
    device_info: { ios_advertising_id: '07d2ebaa-e956-407e-a1e6-f05f871bf4e2', platform: 'iOS' },
    application_info: { application_name: 'node-harness', application_version: '1.0.0' },
    consent_state: {
      gdpr: { document_agreement: { document: 'document_agreement.v2', consented: true, timestamp_unixtime_ms: now, location: 'dtmgbank.com/signup', hardware_id: 'IDFA:a5d9' } },
      ccpa: { data_sale_opt_out: { document: 'document_agreement.v3', consented: true, timestamp_unixtime_ms: now, location: 'mparticle.test/signup', hardware_id: 'IDFA:3f90' } },
    },
    context: { data_plan: { plan_id: 'harness_plan', plan_version: 1 } },
    events: [
      { event_type: 'session_start', data: { session_id: 12345678, timestamp_unixtime_ms: now - 10000 } },
      { event_type: 'custom_event', data: { event_name: 'Hello World', custom_event_type: 'navigation', custom_attributes: { foo: 'bar', answer: '42' }, timestamp_unixtime_ms: now - 9000 } },
      { event_type: 'screen_view', data: { screen_name: 'Home', custom_attributes: { section: 'top' }, timestamp_unixtime_ms: now - 8000 } },
      {
        event_type: 'commerce_event',
        data: {
          timestamp_unixtime_ms: now - 7000,
          product_action: { action: 'purchase', transaction_id: 'txn-node-1', total_amount: 21.49, tax_amount: 1.5, products: [{ id: 'sample-sku', name: 'Example Product', price: 19.99, quantity: 1 }] },
        },
      },
      { event_type: 'crash_report', data: { class_name: 'TypeError', message: 'boom', stack_trace: 'at harness.js:1', exception_handled: true, severity: 'error', timestamp_unixtime_ms: now - 6000 } },
      { event_type: 'session_end', data: { session_id: 12345678, session_duration_ms: 10000, timestamp_unixtime_ms: now } },
    ],
  };
}

function readJob(argv) {
  const arg = argv[0];
  let text;
  if (arg === undefined || arg === '-') text = fs.readFileSync(0, 'utf8');
  else if (arg.trim().startsWith('{')) text = arg;
  else text = fs.readFileSync(arg, 'utf8');
  return JSON.parse(text);
}

function makeApi(job) {
  // Base path override (client-sdk-endpoints.md §4.2): ApiClient.basePath, passed as 2nd ctor arg.
  const client = new mParticle.ApiClient();
  client.basePath = (job.basePath || job.baseUrl.replace(/\/+$/, '') + '/v2').replace(/\/+$/, '');
  if (job.timeoutMs) client.timeout = job.timeoutMs;
  const api = new mParticle.EventsApi(new mParticle.Configuration(job.apiKey, job.apiSecret), client);
  return { api, client };
}

function call(api, method, body, meta, echo) {
  return new Promise((resolve) => {
    const out = { call: method, index: meta.index, batches: meta.batches, ok: false, status: null, error: null, code: null, retryAfter: null, responseBody: null, warnings: meta.warnings };
    if (echo) out.payload = JSON.parse(JSON.stringify(body));
    try {
      api[method](body, (error, _data, response) => {
        const resp = response || (error && error.response) || null;
        if (resp) {
          out.status = resp.status;
          out.responseBody = resp.text === undefined ? null : resp.text;
          out.retryAfter = (resp.header && resp.header['retry-after']) || null;
        }
        if (error) {
          out.error = error.message || String(error);
          out.code = error.code || null;
          if (out.status === null && error.status) out.status = error.status;
        } else {
          out.ok = true;
        }
        resolve(out);
      });
    } catch (e) {
      out.error = e.message;
      resolve(out);
    }
  });
}

async function main() {
  let job;
  try {
    job = readJob(process.argv.slice(2));
    if (!job.baseUrl && !job.basePath) throw new Error('job needs baseUrl (or basePath)');
    if (!job.apiKey || !job.apiSecret) process.stderr.write('warning: apiKey/apiSecret missing -> the SDK sends NO Authorization header\n');
  } catch (e) {
    process.stderr.write('bad job: ' + e.message + '\n');
    process.exitCode = 2;
    return;
  }
  const mode = job.mode || 'both';
  if (!['both', 'single', 'bulk'].includes(mode)) {
    process.stderr.write('bad job: mode must be both|single|bulk\n');
    process.exitCode = 2;
    return;
  }
  const specs = Array.isArray(job.batches) && job.batches.length ? job.batches : [sampleBatchSpec()];
  const { api } = makeApi(job);
  let allOk = true;
  const emit = (o) => {
    allOk = allOk && o.ok;
    process.stdout.write(JSON.stringify(o) + '\n');
  };

  if (mode === 'both' || mode === 'single') {
    for (let i = 0; i < specs.length; i++) {
      const warnings = [];
      const batch = buildBatch(specs[i], warnings);
      emit(await call(api, 'uploadEvents', batch, { index: i, batches: 1, warnings }, job.echoPayload));
    }
  }
  if (mode === 'both' || mode === 'bulk') {
    const warnings = [];
    const batches = specs.map((s) => buildBatch(s, warnings));
    emit(await call(api, 'bulkUploadEvents', batches, { index: null, batches: batches.length, warnings }, job.echoPayload));
  }
  process.exitCode = allOk ? 0 : 1;
}

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(String(e && e.stack ? e.stack : e) + '\n');
    process.exitCode = 2;
  });
}

module.exports = { buildBatch, sampleBatchSpec, makeApi };
