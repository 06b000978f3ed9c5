'use strict';
// SASL authentication with the real client: every mechanism it offers, at every version where
// it supports SASL (2.9 and later), against a second ironrod started here with a users file
// written by `ironrod user create`. Wrong passwords, unknown users and operations before
// authentication are refused with the reference's error texts.

const {describe, test, before, after} = require('node:test');
const assert = require('node:assert/strict');
const {spawn, execFileSync} = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const infinispan = require('infinispan');
const h = require('../lib/harness');

const BIN = process.env.IRONROD_BIN;
const MECHANISMS = ['PLAIN', 'DIGEST-MD5', 'SCRAM-SHA-1', 'SCRAM-SHA-256', 'SCRAM-SHA-384', 'SCRAM-SHA-512'];
const VERSIONS = ['auto', '4.1', '4.0', '3.1', '3.0', '2.9'];

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const {port} = s.address(); s.close(() => resolve(port)); });
    s.on('error', reject);
  });
}

async function waitForPort(port, ms) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const ok = await new Promise((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => { c.destroy(); resolve(true); });
      c.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`ironrod with authentication did not listen on ${port}`);
}

describe('SASL authentication', {skip: BIN ? false : 'IRONROD_BIN not set (run through run.sh)'}, () => {
  let server; let port; let dir;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ironrod-auth-'));
    const users = path.join(dir, 'users.toml');
    execFileSync(BIN, ['user', 'create', 'admin', '--password', 'secret', '--roles', 'admin', '--users-file', users]);
    assert.ok(!fs.readFileSync(users, 'utf8').includes('secret'), 'no plaintext password on disk');
    port = await freePort();
    const config = path.join(dir, 'ironrod.toml');
    fs.writeFileSync(config, `bind = "127.0.0.1:${port}"\n[security]\nusers_file = ${JSON.stringify(users)}\n`);
    server = spawn(BIN, ['--config', config, '--log', 'warn'], {stdio: 'ignore'});
    await waitForPort(port, 10000);
  });

  after(() => {
    if (server) server.kill('SIGTERM');
    if (dir) fs.rmSync(dir, {recursive: true, force: true});
  });

  const connect = (version, mech, user, password) => h.withTimeout(infinispan.client(
    {port, host: '127.0.0.1'},
    {version, cacheName: 'default', maxRetries: 1,
      authentication: {enabled: true, saslMechanism: mech, userName: user, password, serverName: 'infinispan', realm: 'default'}}),
  h.OP_TIMEOUT_MS, `connect ${mech}`);

  for (const version of VERSIONS) {
    for (const mech of MECHANISMS) {
      test(`${version} ${mech}: authenticates, then reads and writes`, {timeout: h.TEST_TIMEOUT_MS}, async () => {
        const c = await connect(version, mech, 'admin', 'secret');
        try {
          const key = h.uniq(`auth-${mech}`);
          await h.withTimeout(c.put(key, 'v'), h.OP_TIMEOUT_MS, 'put');
          assert.equal(await h.withTimeout(c.get(key), h.OP_TIMEOUT_MS, 'get'), 'v');
        } finally { await c.disconnect(); }
      });
    }
  }

  for (const mech of MECHANISMS) {
    for (const [user, password, why] of [['admin', 'wrong', 'wrong password'], ['nobody', 'secret', 'unknown user']]) {
      test(`${mech}: ${why} is refused as invalid credentials`, {timeout: h.TEST_TIMEOUT_MS}, async () => {
        await assert.rejects(connect('auto', mech, user, password),
          (e) => String(e).includes('ISPN006024: Invalid credentials'));
      });
    }
  }

  test('operations before authentication are refused with the reference text', {timeout: h.TEST_TIMEOUT_MS}, async () => {
    const c = await h.withTimeout(infinispan.client({port, host: '127.0.0.1'}, {cacheName: 'default', maxRetries: 1}),
      h.OP_TIMEOUT_MS, 'connect without credentials');
    try {
      await assert.rejects(h.withTimeout(c.put('k', 'v'), h.OP_TIMEOUT_MS, 'put'),
        (e) => String(e).includes("java.lang.SecurityException: ISPN006017: Operation 'PUT' requires authentication"));
    } finally { await c.disconnect(); }
  });
});
