'use strict';
// Shared helpers for the conformance tests. Lives outside test/ so that a bare `node --test`
// does not pick it up as a test file.

const assert = require('node:assert/strict');
const infinispan = require('infinispan');

const HOST = process.env.IRONROD_HOST || '127.0.0.1';
const PORT = Number(process.env.IRONROD_PORT);
if (!Number.isInteger(PORT) || PORT <= 0) {
  throw new Error('IRONROD_PORT is not set: start the tests through run.sh, or export ' +
    'IRONROD_PORT=<port of a running ironrod>');
}

// Every protocol version the client speaks, 'auto' first. 'auto' must negotiate 4.1.
const VERSIONS = ['auto', '4.1', '4.0', '3.1', '3.0', '2.9', '2.5', '2.2'];

// Numeric form: 'auto' is what the client negotiates against Ironrod (4.1).
const vnum = (v) => (v === 'auto' ? 41 : Math.round(Number(v) * 10));
const expectedVersion = (v) => (v === 'auto' ? '4.1' : v);

// The client leaves promises pending forever when a server misbehaves (closes the socket,
// writes a wrong number of bytes). Bound everything so that a server bug fails a test
// instead of hanging the suite.
const OP_TIMEOUT_MS = Number(process.env.IRONROD_OP_TIMEOUT_MS || 10000);
function withTimeout(p, ms, what) {
  let t;
  return Promise.race([
    Promise.resolve(p).finally(() => clearTimeout(t)),
    new Promise((_, rej) => {
      t = setTimeout(() => rej(new Error(`TIMEOUT: ${what} did not settle within ${ms} ms`)), ms);
    }),
  ]);
}

// Test-level timeout for node:test (some tests wait for real expiry).
const TEST_TIMEOUT_MS = 30000;

async function connect(version, cacheName, extra) {
  const cfg = Object.assign({version, cacheName: cacheName === undefined ? 'default' : cacheName, maxRetries: 1},
    extra || {});
  return withTimeout(infinispan.client({port: PORT, host: HOST}, cfg), OP_TIMEOUT_MS,
    `connect(version=${version}, cache=${cfg.cacheName})`);
}

async function disconnect(client) {
  if (!client) return;
  try {
    await withTimeout(client.disconnect(), 3000, 'disconnect');
  } catch (e) { /* best effort */ }
}

// Wraps a connected client so that every method call is bounded by OP_TIMEOUT_MS.
function bounded(client) {
  return new Proxy(client, {
    get(target, prop) {
      const v = target[prop];
      if (typeof v !== 'function' || prop === 'getProtocolVersion' || prop === 'then') return v;
      return (...args) => {
        const r = v.apply(target, args);
        return r && typeof r.then === 'function' ? withTimeout(r, OP_TIMEOUT_MS, String(prop)) : r;
      };
    },
  });
}

// The client rejects with the server's error message as a plain string, not an Error.
async function rejection(promise) {
  try {
    const v = await promise;
    assert.fail(`expected a rejection, got ${JSON.stringify(v)}`);
  } catch (e) {
    if (e && e.code === 'ERR_ASSERTION') throw e;
    return e;
  }
}
const errorText = (e) => (typeof e === 'string' ? e : (e && e.message) || String(e));

// A previous value is a plain value below 4.0, and {version, value, created, ...} from 4.0 on
// (the PREV block carries the entry metadata). Returns the bare value.
function prevValue(version, prev) {
  if (prev === undefined) return undefined;
  if (vnum(version) >= 40) {
    assert.equal(typeof prev, 'object', `4.0+ previous value must carry metadata, got ${JSON.stringify(prev)}`);
    assert.ok(Buffer.isBuffer(prev.version) && prev.version.length === 8, 'previous value has an 8-byte version');
    return prev.value;
  }
  assert.notEqual(typeof prev, 'object', `pre-4.0 previous value must be bare, got ${JSON.stringify(prev)}`);
  return prev;
}

// Entry versions as BigInt, to compare them.
const verNum = (buf) => {
  assert.ok(Buffer.isBuffer(buf) && buf.length === 8, `version must be an 8-byte Buffer, got ${buf}`);
  return buf.readBigInt64BE(0);
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Unique key prefixes, so tests never see each other's entries even without a clear.
let seq = 0;
const uniq = (tag) => `${tag}-${process.pid}-${++seq}`;

module.exports = {
  infinispan, assert, HOST, PORT, VERSIONS, vnum, expectedVersion, withTimeout, connect, disconnect,
  bounded, rejection, errorText, prevValue, verNum, sleep, uniq, OP_TIMEOUT_MS, TEST_TIMEOUT_MS,
};
