#!/usr/bin/env node
// Drives the official infinispan JS client through its operations, through the recording proxy.
// Before each group of operations it announces a scenario on the proxy's control port, so the
// capture can attribute frames. Every operation is awaited, bounded by a timeout and caught.
//
// Usage: node capture.js [--host 127.0.0.1] [--port 11422] [--auth-port 11423]
//                        [--control 11499] [--versions auto,4.1,...] [--only groupA,groupB]
'use strict';

const net = require('net');
const infinispan = require('infinispan');
const CLIENT_VERSION = require('infinispan/package.json').version;
const CLIENT_ID = `js-${CLIENT_VERSION}`;

function parseArgs(argv) {
  const o = {host: '127.0.0.1', port: 11422, 'auth-port': 0, control: 11499,
    versions: 'auto,4.1,4.0,3.1,3.0,2.9,2.5,2.2', 'auth-versions': 'auto,4.1,4.0,3.1,3.0,2.9',
    'op-timeout': 5000, only: ''};
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    o[a.slice(2)] = argv[++i];
  }
  o.port = Number(o.port); o['auth-port'] = Number(o['auth-port']);
  o.control = Number(o.control); o['op-timeout'] = Number(o['op-timeout']);
  return o;
}
const opts = parseArgs(process.argv);
const only = opts.only ? new Set(opts.only.split(',')) : null;

// ---------------------------------------------------------------- control channel
class Control {
  constructor(port) { this.port = port; this.buf = ''; this.waiters = []; }
  async open() {
    this.sock = net.connect(this.port, opts.host);
    await new Promise((res, rej) => { this.sock.once('connect', res); this.sock.once('error', rej); });
    this.sock.setEncoding('utf8');
    this.sock.on('data', (d) => {
      this.buf += d;
      let i;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i); this.buf = this.buf.slice(i + 1);
        const w = this.waiters.shift(); if (w) w(line);
      }
    });
  }
  send(line) {
    return withTimeout(new Promise((res) => { this.waiters.push(res); this.sock.write(line + '\n'); }),
      10000, 'control');
  }
  scenario(name) { return this.send(`scenario ${CLIENT_ID} ${name}`); }
  sync() { return this.send('sync'); }
  close() { this.sock.end(); }
}

// ---------------------------------------------------------------- helpers
const results = [];   // {scenario, op, ok, detail}
let currentScenario = '';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function withTimeout(p, ms, what) {
  let t;
  return Promise.race([
    Promise.resolve(p).finally(() => clearTimeout(t)),
    new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`TIMEOUT ${what} after ${ms}ms`)), ms); }),
  ]);
}

function show(v) {
  try {
    const s = typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v, (k, x) =>
      (x && x.type === 'Buffer' ? `<${x.data.length} bytes>` : x));
    return s === undefined ? 'undefined' : (s.length > 300 ? s.slice(0, 300) + '...' : s);
  } catch (e) { return String(v); }
}

let timeouts = 0;
async function op(name, fn, ms) {
  try {
    const v = await withTimeout(Promise.resolve().then(fn), ms || opts['op-timeout'], name);
    results.push({scenario: currentScenario, op: name, ok: true, detail: show(v)});
    return v;
  } catch (e) {
    const msg = typeof e === 'string' ? e : (e && e.message) || String(e);
    if (msg.startsWith('TIMEOUT')) timeouts++;
    results.push({scenario: currentScenario, op: name, ok: false, detail: msg.slice(0, 300)});
    return undefined;
  }
}

let control;
async function scenario(name) {
  currentScenario = name;
  await control.scenario(name);
}

function wanted(group) { return !only || only.has(group); }

async function connect(version, extra) {
  const cfg = Object.assign({version: version, cacheName: 'default', maxRetries: 1}, extra || {});
  return withTimeout(infinispan.client({port: opts.port, host: opts.host}, cfg), 8000, 'connect');
}

async function disconnect(c) {
  if (!c) return;
  try { await withTimeout(c.disconnect(), 3000, 'disconnect'); } catch (e) { /* ignore */ }
}

const vnum = (v) => (v === 'auto' ? 99 : Number(v));

// ---------------------------------------------------------------- scenario groups
async function basic(c, v) {
  await scenario(`${v}/ping`);
  await op('ping', () => c.ping());
  await op('getProtocolVersion', () => c.getProtocolVersion());

  await scenario(`${v}/put-get-remove-contains`);
  await op('clear', () => c.clear());
  await op('get-absent', () => c.get('k-absent'));
  await op('put', () => c.put('k1', 'v1'));
  await op('get-present', () => c.get('k1'));
  await op('containsKey-present', () => c.containsKey('k1'));
  await op('containsKey-absent', () => c.containsKey('k-absent'));
  await op('remove-present', () => c.remove('k1'));
  await op('remove-absent', () => c.remove('k1'));
  await op('remove-previous-absent', () => c.remove('k1', {previous: true}));
  await op('put-unicode', () => c.put('ключ-☃', 'värde-😀'));
  await op('get-unicode', () => c.get('ключ-☃'));
  await op('put-empty-value', () => c.put('k-empty', ''));
  await op('get-empty-value', () => c.get('k-empty'));
  await op('put-large-value', () => c.put('k-large', 'x'.repeat(70000)));
  await op('get-large-value', () => c.get('k-large'));

  await scenario(`${v}/put-previous`);
  await op('put-previous-absent', () => c.put('kp', 'p1', {previous: true}));
  await op('put-previous-present', () => c.put('kp', 'p2', {previous: true}));
  await op('remove-previous-present', () => c.remove('kp', {previous: true}));

  await scenario(`${v}/putIfAbsent`);
  await op('putIfAbsent-absent', () => c.putIfAbsent('kpia', 'a1'));
  await op('putIfAbsent-present', () => c.putIfAbsent('kpia', 'a2'));
  await op('putIfAbsent-present-previous', () => c.putIfAbsent('kpia', 'a3', {previous: true}));
  await op('putIfAbsent-absent-previous', () => c.putIfAbsent('kpia2', 'b1', {previous: true}));

  await scenario(`${v}/replace`);
  await op('replace-absent', () => c.replace('krep', 'r1'));
  await op('replace-absent-previous', () => c.replace('krep', 'r1', {previous: true}));
  await op('put', () => c.put('krep', 'r0'));
  await op('replace-present', () => c.replace('krep', 'r2'));
  await op('replace-present-previous', () => c.replace('krep', 'r3', {previous: true}));

  await scenario(`${v}/versioned`);
  await op('put', () => c.put('kver', 'x0'));
  const meta = await op('getWithMetadata', () => c.getWithMetadata('kver'));
  const ver = meta && meta.version;
  const bad = Buffer.from([0, 0, 0, 0, 0, 0, 0x7f, 0x7f]);
  await op('replaceWithVersion-mismatch', () => c.replaceWithVersion('kver', 'x1', bad));
  await op('replaceWithVersion-mismatch-previous', () => c.replaceWithVersion('kver', 'x1', bad, {previous: true}));
  if (ver) {
    await op('replaceWithVersion-match-previous', () => c.replaceWithVersion('kver', 'x2', ver, {previous: true}));
    const meta2 = await op('getWithMetadata-2', () => c.getWithMetadata('kver'));
    await op('removeWithVersion-mismatch', () => c.removeWithVersion('kver', bad));
    await op('removeWithVersion-mismatch-previous', () => c.removeWithVersion('kver', bad, {previous: true}));
    if (meta2 && meta2.version) {
      await op('replaceWithVersion-match', () => c.replaceWithVersion('kver', 'x3', meta2.version));
      const meta3 = await op('getWithMetadata-3', () => c.getWithMetadata('kver'));
      if (meta3 && meta3.version) {
        await op('removeWithVersion-match-previous', () => c.removeWithVersion('kver', meta3.version, {previous: true}));
      }
    }
    await op('put', () => c.put('kver', 'y0'));
    const meta4 = await op('getWithMetadata-4', () => c.getWithMetadata('kver'));
    if (meta4 && meta4.version) await op('removeWithVersion-match', () => c.removeWithVersion('kver', meta4.version));
  }
  await op('replaceWithVersion-absent', () => c.replaceWithVersion('kver-absent', 'z', bad));
  await op('removeWithVersion-absent', () => c.removeWithVersion('kver-absent', bad));
  await op('getWithMetadata-absent', () => c.getWithMetadata('kver-absent'));

  await scenario(`${v}/expiry-metadata`);
  const units = [
    ['10s', '5m'], ['30000ms', '1h'], ['1h', '2d'], ['2d', '10s'], ['123456789ns', '1000μs'],
    ['1000μs', '123456789ns'], ['5m', undefined], [undefined, '30000ms'], [-1, -1], [0, 0], [-1, '10s'],
  ];
  for (let i = 0; i < units.length; i++) {
    const [ls, mi] = units[i];
    const o = {};
    if (ls !== undefined) o.lifespan = ls;
    if (mi !== undefined) o.maxIdle = mi;
    await op(`put-exp-${show(ls)}-${show(mi)}`, () => c.put(`kexp${i}`, `e${i}`, o));
    await op(`getWithMetadata-exp-${i}`, () => c.getWithMetadata(`kexp${i}`));
  }
  await op('put-exp-previous', () => c.put('kexp0', 'e0b', {lifespan: '10s', maxIdle: '5m', previous: true}));
  await op('putIfAbsent-exp', () => c.putIfAbsent('kexp-pia', 'e', {lifespan: '1h'}));
  await op('replace-exp', () => c.replace('kexp-pia', 'e2', {maxIdle: '1h'}));

  await scenario(`${v}/putAll-getAll`);
  await op('putAll', () => c.putAll([{key: 'pa1', value: 'v1'}, {key: 'pa2', value: 'v2'}, {key: 'pa3', value: 'v3'}]));
  await op('putAll-exp', () => c.putAll([{key: 'pa4', value: 'v4'}], {lifespan: '1h', maxIdle: '5m'}));
  await op('getAll', () => c.getAll(['pa1', 'pa2', 'pa3', 'pa4', 'pa-absent']));
  await op('getAll-empty', () => c.getAll([]));

  await scenario(`${v}/size-stats-clear`);
  await op('size', () => c.size());
  await op('stats', () => c.stats());
  await op('clear', () => c.clear());
  await op('size-after-clear', () => c.size());

  await scenario(`${v}/flags`);
  const F = infinispan.flags;
  await op('put-SKIP_LISTENER_NOTIFICATION', () => c.put('kf', 'f1', {flags: F.SKIP_LISTENER_NOTIFICATION}));
  await op('put-SKIP_CACHE_LOAD|SKIP_INDEXING', () => c.put('kf', 'f2', {flags: F.SKIP_CACHE_LOAD | F.SKIP_INDEXING}));
  await op('put-DEFAULT_LIFESPAN|DEFAULT_MAXIDLE', () => c.put('kf', 'f3', {flags: F.DEFAULT_LIFESPAN | F.DEFAULT_MAXIDLE}));
  await op('put-FORCE_RETURN_VALUE-flag', () => c.put('kf', 'f4', {flags: F.FORCE_RETURN_VALUE}));
  await op('remove-SKIP_LISTENER_NOTIFICATION', () => c.remove('kf', {flags: F.SKIP_LISTENER_NOTIFICATION}));
}

async function iteration(c, v) {
  await scenario(`${v}/iterator`);
  await op('putAll', () => c.putAll([{key: 'it1', value: 'a'}, {key: 'it2', value: 'b'}, {key: 'it3', value: 'c'},
    {key: 'it4', value: 'd'}, {key: 'it5', value: 'e'}]));
  await op('put-exp', () => c.put('it6', 'f', {lifespan: '1h', maxIdle: '10m'}));
  for (const withMeta of [false, true]) {
    await op(`iterate-batch2-metadata-${withMeta}`, async () => {
      const it = await c.iterator(2, {metadata: withMeta});
      const seen = [];
      for (let i = 0; i < 20; i++) {
        const e = await it.next();
        if (e.done) break;
        seen.push(e);
      }
      await it.close();
      return seen;
    });
  }
  await op('iterate-close-early', async () => {
    const it = await c.iterator(2);
    const e = await it.next();
    await it.close();
    return e;
  });
}

async function listeners(c, v) {
  await scenario(`${v}/listeners`);
  const events = [];
  const lid = await op('addListener-create', () => c.addListener('create', (k, ver) => events.push(['create', k])));
  if (lid) {
    await op('addListener-modify-same-id', () => c.addListener('modify', (k) => events.push(['modify', k]), {listenerId: lid}));
    await op('addListener-remove-same-id', () => c.addListener('remove', (k) => events.push(['remove', k]), {listenerId: lid}));
    await op('addListener-expiry-same-id', () => c.addListener('expiry', (k) => events.push(['expiry', k]), {listenerId: lid}));
  }
  await op('put-create', () => c.put('lk1', 'v1'));
  await op('put-modify', () => c.put('lk1', 'v2'));
  await op('put-skip-listener', () => c.put('lk1', 'v3', {flags: infinispan.flags.SKIP_LISTENER_NOTIFICATION}));
  await op('remove', () => c.remove('lk1'));
  await op('put-short-lifespan', () => c.put('lk-exp', 'v', {lifespan: '1s'}));
  await sleep(1600);
  await op('get-expired', () => c.get('lk-exp'));
  await sleep(300);
  if (lid) await op('removeListener', () => c.removeListener(lid));
  await op('events-seen', () => events);

  await scenario(`${v}/listener-include-state`);
  await op('put-state', () => c.put('ls1', 's1'));
  const ev2 = [];
  const lid2 = await op('addListener-create-includeState', () => c.addListener('create', (k) => ev2.push(k), {includeState: true}));
  await op('put', () => c.put('ls2', 's2'));
  await sleep(200);
  if (lid2) await op('removeListener', () => c.removeListener(lid2));
  await op('events-seen', () => ev2);
}

async function execTasks(c, v) {
  await scenario(`${v}/exec`);
  await op('execute-unknown-task', () => c.execute('unknown-task', {p1: 'v1'}));
  await op('execute-unknown-task-noparams', () => c.execute('unknown-task'));
  if (v === 'auto') {
    await op('addScript', () => c.addScript('ironrod-sample.js', '// mode=local,language=javascript\n1+1'));
    await op('execute-script', () => c.execute('ironrod-sample.js'));
    await scenario(`${v}/admin`);
    await op('admin.cacheNames', () => c.admin.cacheNames());
    await scenario(`${v}/query`);
    await op('query', () => c.query({queryString: 'from Nope'}));
  }
}

async function counters(c, v) {
  await scenario(`${v}/counters`);
  const tag = v.replace('.', '');
  const s = `js-strong-${tag}`, w = `js-weak-${tag}`, b = `js-bounded-${tag}`;
  await op('isDefined-absent', () => c.counterIsDefined(s));
  await op('get-undefined', () => c.counterGet('js-undefined'));
  await op('create-strong', () => c.counterCreate(s, {type: 'strong', initialValue: 5}));
  await op('create-strong-again', () => c.counterCreate(s, {type: 'strong', initialValue: 5}));
  await op('create-weak', () => c.counterCreate(w, {type: 'weak', concurrencyLevel: 4, initialValue: 1}));
  await op('create-bounded-persistent', () => c.counterCreate(b, {type: 'strong', storage: 'persistent', lowerBound: -10, upperBound: 10}));
  await op('create-bounded-volatile', () => c.counterCreate(b + 'v', {type: 'strong', lowerBound: -10, upperBound: 10}));
  await op('isDefined', () => c.counterIsDefined(s));
  await op('getConfiguration-strong', () => c.counterGetConfiguration(s));
  await op('getConfiguration-weak', () => c.counterGetConfiguration(w));
  await op('getConfiguration-bounded', () => c.counterGetConfiguration(b + 'v'));
  await op('getConfiguration-undefined', () => c.counterGetConfiguration('js-undefined'));
  await op('get', () => c.counterGet(s));
  await op('addAndGet', () => c.counterAddAndGet(s, 10));
  await op('addAndGet-weak', () => c.counterAddAndGet(w, 3));
  await op('get-weak', () => c.counterGet(w));
  await op('compareAndSwap-match', () => c.counterCompareAndSwap(s, 15, 20));
  await op('compareAndSwap-mismatch', () => c.counterCompareAndSwap(s, 15, 30));
  await op('getAndSet', () => c.counterGetAndSet(s, 42));
  await op('reset', () => c.counterReset(s));
  await op('get-after-reset', () => c.counterGet(s));
  await op('remove', () => c.counterRemove(s));
  await op('remove-weak', () => c.counterRemove(w));
  await op('remove-undefined', () => c.counterRemove('js-undefined'));
  // Last: the bound-reached reply is known to upset this client's decoder.
  await op('addAndGet-bounded-overflow', () => c.counterAddAndGet(b + 'v', 100));
}

async function multimap(v) {
  await scenario(`${v}/multimap`);
  const m = await op('connect-multimap', () => connect(v, {cacheName: 'multimap'}));
  if (!m) return;
  await op('put', () => m.multimapPut('mk', 'a'));
  await op('put-2', () => m.multimapPut('mk', 'b'));
  await op('put-dup', () => m.multimapPut('mk', 'b'));
  await op('get', () => m.multimapGet('mk'));
  await op('get-absent', () => m.multimapGet('mk-absent'));
  await op('size', () => m.multimapSize());
  await op('containsKey', () => m.multimapContainsKey('mk'));
  await op('containsKey-absent', () => m.multimapContainsKey('nope'));
  await op('containsValue', () => m.multimapContainsValue('a'));
  await op('containsEntry', () => m.multimapContainsEntry('mk', 'b'));
  await op('containsEntry-absent', () => m.multimapContainsEntry('mk', 'zz'));
  await op('removeEntry', () => m.multimapRemoveEntry('mk', 'a'));
  await op('removeKey', () => m.multimapRemoveKey('mk'));
  await op('removeKey-absent', () => m.multimapRemoveKey('mk'));
  await disconnect(m);
}

async function transactions(v) {
  await scenario(`${v}/transactions`);
  const t = await op('connect-tx', () => connect(v, {cacheName: 'tx'}));
  if (!t) return;
  const tm = t.getTransactionManager();
  await op('put-outside', () => t.put('tk0', 'base'));
  await op('begin', () => tm.begin());
  await op('tx-get-existing', () => t.get('tk0'));
  await op('tx-put', () => t.put('tk1', 'tv1'));
  await op('tx-put-2', () => t.put('tk0', 'changed'));
  await op('tx-remove', () => t.remove('tk-absent'));
  await op('commit', () => tm.commit());
  await op('get-after-commit', () => t.get('tk1'));
  await op('begin-2', () => tm.begin());
  await op('tx-put-rb', () => t.put('tk2', 'never'));
  await op('rollback', () => tm.rollback());
  await op('get-after-rollback', () => t.get('tk2'));
  await op('begin-3', () => tm.begin());
  await op('commit-empty', () => tm.commit());
  await disconnect(t);
}

async function unknownCache(v) {
  await scenario(`${v}/unknown-cache`);
  const u = await op('connect-unknown-cache', () => connect(v, {cacheName: 'no-such-cache'}));
  if (u) {
    await op('get-unknown-cache', () => u.get('k'));
    await op('put-unknown-cache', () => u.put('k', 'v'));
    await disconnect(u);
  }
}

async function extras(v) {
  await scenario(`${v}/text-cache`);
  const t = await op('connect-text-cache', () => connect(v, {cacheName: 'text'}));
  if (t) {
    await op('put', () => t.put('tk', 'tv'));
    await op('get', () => t.get('tk'));
    await disconnect(t);
  }
  await scenario(`${v}/json-dataformat`);
  const j = await op('connect-json', () => connect(v, {dataFormat: {keyType: 'application/json', valueType: 'application/json'}}));
  if (j) {
    await op('put-json', () => j.put('{"k":1}', '{"v":"x"}'));
    await op('get-json', () => j.get('{"k":1}'));
    await disconnect(j);
  }
  await scenario(`${v}/near-cache`);
  const n = await op('connect-near', () => connect(v, {nearCache: {maxEntries: 10}}));
  if (n) {
    await op('put', () => n.put('nk', 'nv'));
    await op('get-1', () => n.get('nk'));
    await op('get-2-near', () => n.get('nk'));
    await op('put-invalidate', () => n.put('nk', 'nv2'));
    await sleep(200);
    await op('get-3', () => n.get('nk'));
    await disconnect(n);
  }
}

async function auth() {
  const mechs = ['PLAIN', 'DIGEST-MD5', 'SCRAM-SHA-1', 'SCRAM-SHA-256', 'SCRAM-SHA-384', 'SCRAM-SHA-512'];
  const versions = opts['auth-versions'].split(',');
  for (const v of versions) {
    for (const mech of mechs) {
      await scenario(`auth/${v}/${mech}`);
      const a = await op('connect-auth', () => withTimeout(infinispan.client({port: opts['auth-port'], host: opts.host}, {
        version: v, cacheName: 'default', maxRetries: 1,
        authentication: {enabled: true, saslMechanism: mech, userName: 'admin', password: 'password'},
      }), 8000, 'connect'));
      if (a) {
        await op('put', () => a.put(`auth-${mech}`, 'v'));
        await op('get', () => a.get(`auth-${mech}`));
        await disconnect(a);
      }
    }
  }
  for (const [v, mech] of [['auto', 'PLAIN'], ['auto', 'SCRAM-SHA-256'], ['auto', 'DIGEST-MD5'], ['2.9', 'PLAIN']]) {
    await scenario(`auth/${v}/${mech}-wrong-password`);
    const a = await op('connect-auth-wrong', () => withTimeout(infinispan.client({port: opts['auth-port'], host: opts.host}, {
      version: v, cacheName: 'default', maxRetries: 1,
      authentication: {enabled: true, saslMechanism: mech, userName: 'admin', password: 'wrong'},
    }), 8000, 'connect'));
    if (a) { await op('get', () => a.get('k')); await disconnect(a); }
  }
  await scenario('auth/auto/unauthenticated-op');
  const a = await op('connect-noauth', () => withTimeout(infinispan.client({port: opts['auth-port'], host: opts.host},
    {version: 'auto', cacheName: 'default', maxRetries: 1}), 8000, 'connect'));
  if (a) { await op('put-unauthenticated', () => a.put('k', 'v')); await disconnect(a); }
}

async function runVersion(v) {
  await scenario(`${v}/connect`);
  let c = await op('connect', () => connect(v));
  if (!c) return;
  const n = vnum(v);
  const groups = [
    ['basic', () => basic(c, v), true],
    ['iteration', () => iteration(c, v), n >= 2.5],
    ['listeners', () => listeners(c, v), n >= 2.9],
    ['exec', () => execTasks(c, v), true],
    ['counters', () => counters(c, v), n >= 3.1],
    ['multimap', () => multimap(v), n >= 4.0],
    ['transactions', () => transactions(v), n >= 2.9],
    ['unknown-cache', () => unknownCache(v), true],
    ['extras', () => extras(v), v === 'auto' || v === '2.2'],
  ];
  for (const [g, fn, enabled] of groups) {
    if (!enabled || !wanted(g)) continue;
    const before = timeouts;
    try { await fn(); } catch (e) { results.push({scenario: currentScenario, op: g, ok: false, detail: String(e)}); }
    if (timeouts > before) {
      // A timeout usually means the connection is stuck; continue on a fresh client.
      await disconnect(c);
      await scenario(`${v}/reconnect-after-${g}`);
      c = await op('reconnect', () => connect(v));
      if (!c) return;
    }
  }
  await disconnect(c);
}

async function main() {
  control = new Control(opts.control);
  await control.open();
  for (const v of opts.versions.split(',').filter(Boolean)) {
    console.error(`[${CLIENT_ID}] version ${v}`);
    await runVersion(v);
  }
  if (opts['auth-port'] && wanted('auth')) await auth();
  await control.sync();
  control.close();
  let ok = 0, bad = 0;
  for (const r of results) {
    if (r.ok) ok++; else bad++;
    console.log(`${r.ok ? 'OK  ' : 'FAIL'} ${r.scenario} :: ${r.op} :: ${r.detail}`);
  }
  console.log(`SUMMARY ${CLIENT_ID} ok=${ok} failed=${bad}`);
  // Some client sockets (listeners) may linger; exit explicitly.
  setTimeout(() => process.exit(0), 100);
}

main().catch((e) => { console.error('FATAL', e); process.exit(2); });
