'use strict';
// SASL authentication with the real client: every mechanism it offers, at every version where
// it supports SASL (2.9 and later), against a second ironrod started here with a users file
// written by `ironrod user create` and TLS optional on the same port (certificates from
// `ironrod-test-certs`, built next to IRONROD_BIN). Challenge-response mechanisms run in clear
// and inside TLS; PLAIN only inside TLS (`plain_in_clear` is off). Wrong passwords, unknown
// users, operations before authentication and writes by an observer are refused with the
// reference's error texts; a client certificate authenticates through EXTERNAL.

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
const CLEAR_MECHANISMS = MECHANISMS.filter((m) => m !== 'PLAIN');
const VERSIONS = ['auto', '4.1', '4.0', '3.1', '3.0', '2.9'];
const TLS_VERSIONS = ['auto', '3.0', '2.9'];
const CERTS_BIN = BIN && path.join(path.dirname(BIN), 'ironrod-test-certs');
const HAVE_CERTS = Boolean(CERTS_BIN && fs.existsSync(CERTS_BIN));

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
    execFileSync(BIN, ['user', 'create', 'reader', '--password', 'secret', '--roles', 'observer', '--users-file', users]);
    execFileSync(BIN, ['user', 'create', 'certuser', '--password', 'unused', '--roles', 'application', '--users-file', users]);
    assert.ok(!fs.readFileSync(users, 'utf8').includes('secret'), 'no plaintext password on disk');
    port = await freePort();
    const config = path.join(dir, 'ironrod.toml');
    let text = `bind = "127.0.0.1:${port}"\n[security]\nusers_file = ${JSON.stringify(users)}\nfailure_delay_ms = 0\n`;
    if (HAVE_CERTS) {
      execFileSync(CERTS_BIN, [dir]);
      const f = (name) => JSON.stringify(path.join(dir, name));
      text += `[tls]\nmode = "optional"\ncertificate = ${f('server.pem')}\nkey = ${f('server-key.pem')}\n` +
        `client_ca = ${f('ca.pem')}\nclient_auth = "want"\n`;
    }
    fs.writeFileSync(config, text);
    server = spawn(BIN, ['--config', config, '--log', 'warn'], {stdio: 'ignore'});
    await waitForPort(port, 10000);
  });

  after(() => {
    if (server) server.kill('SIGTERM');
    if (dir) fs.rmSync(dir, {recursive: true, force: true});
  });

  // `ssl`: undefined for cleartext, else the client's TLS options (SNI and hostname checked
  // against `localhost`, which the test certificate names).
  const tlsOpts = (extra) => ({enabled: true, trustCerts: [path.join(dir, 'ca.pem')], sniHostName: 'localhost', ...extra});
  const connect = (version, mech, user, password, ssl) => h.withTimeout(infinispan.client(
    {port, host: '127.0.0.1'},
    {version, cacheName: 'default', maxRetries: 1, ...(ssl ? {ssl} : {}),
      authentication: {enabled: true, saslMechanism: mech, userName: user, password, serverName: 'infinispan', realm: 'default'}}),
  h.OP_TIMEOUT_MS, `connect ${mech}${ssl ? ' over TLS' : ''}`);

  for (const version of VERSIONS) {
    for (const mech of CLEAR_MECHANISMS) {
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

  const tlsSkip = HAVE_CERTS ? false : `${CERTS_BIN} not found (cargo build --workspace --bins)`;
  for (const version of TLS_VERSIONS) {
    for (const mech of MECHANISMS) {
      test(`TLS ${version} ${mech}: authenticates, then reads and writes`, {timeout: h.TEST_TIMEOUT_MS, skip: tlsSkip}, async () => {
        const c = await connect(version, mech, 'admin', 'secret', tlsOpts());
        try {
          const key = h.uniq(`tls-${mech}`);
          await h.withTimeout(c.put(key, 'v'), h.OP_TIMEOUT_MS, 'put');
          assert.equal(await h.withTimeout(c.get(key), h.OP_TIMEOUT_MS, 'get'), 'v');
        } finally { await c.disconnect(); }
      });
    }
  }

  test('PLAIN is not offered in clear', {timeout: h.TEST_TIMEOUT_MS}, async () => {
    await assert.rejects(connect('auto', 'PLAIN', 'admin', 'secret'),
      (e) => /PLAIN is not among the supported server mechanisms/.test(String(e)));
  });

  test('TLS with a wrong SNI host name fails hostname validation', {timeout: h.TEST_TIMEOUT_MS, skip: tlsSkip}, async () => {
    await assert.rejects(connect('auto', 'SCRAM-SHA-512', 'admin', 'secret', tlsOpts({sniHostName: 'elsewhere.test'})));
  });

  for (const [mech, ssl] of [['SCRAM-SHA-512', undefined], ['PLAIN', 'tls']]) {
    for (const [user, password, why] of [['admin', 'wrong', 'wrong password'], ['nobody', 'secret', 'unknown user']]) {
      test(`${mech}${ssl ? ' over TLS' : ''}: ${why} is refused as invalid credentials`,
        {timeout: h.TEST_TIMEOUT_MS, skip: ssl ? tlsSkip : false}, async () => {
          await assert.rejects(connect('auto', mech, user, password, ssl ? tlsOpts() : undefined),
            (e) => String(e).includes('ISPN006024: Invalid credentials'));
        });
    }
  }
  for (const mech of CLEAR_MECHANISMS.filter((m) => m !== 'SCRAM-SHA-512')) {
    test(`${mech}: wrong password is refused as invalid credentials`, {timeout: h.TEST_TIMEOUT_MS}, async () => {
      await assert.rejects(connect('auto', mech, 'admin', 'wrong'),
        (e) => String(e).includes('ISPN006024: Invalid credentials'));
    });
  }

  test('an observer reads over TLS and is refused a write with ISPN000287', {timeout: h.TEST_TIMEOUT_MS, skip: tlsSkip}, async () => {
    const c = await connect('auto', 'SCRAM-SHA-512', 'reader', 'secret', tlsOpts());
    try {
      assert.equal(await h.withTimeout(c.get(h.uniq('absent')), h.OP_TIMEOUT_MS, 'get'), undefined);
      await assert.rejects(h.withTimeout(c.put('k', 'v'), h.OP_TIMEOUT_MS, 'put'),
        (e) => String(e).includes("ISPN000287: Unauthorized access: subject 'Subject with principal(s): [reader, RolePrincipal{name='observer'}") &&
          String(e).includes("lacks 'WRITE' permission"));
    } finally { await c.disconnect(); }
  });

  test('a client certificate authenticates through EXTERNAL', {timeout: h.TEST_TIMEOUT_MS, skip: tlsSkip}, async () => {
    const ssl = tlsOpts({clientAuth: {cert: path.join(dir, 'client.pem'), key: path.join(dir, 'client-key.pem')}});
    const c = await connect('auto', 'EXTERNAL', undefined, undefined, ssl);
    try {
      const key = h.uniq('external');
      await h.withTimeout(c.put(key, 'v'), h.OP_TIMEOUT_MS, 'put');
      assert.equal(await h.withTimeout(c.get(key), h.OP_TIMEOUT_MS, 'get'), 'v');
    } finally { await c.disconnect(); }
  });

  test('operations before authentication are refused with the reference text', {timeout: h.TEST_TIMEOUT_MS}, async () => {
    const c = await h.withTimeout(infinispan.client({port, host: '127.0.0.1'}, {cacheName: 'default', maxRetries: 1}),
      h.OP_TIMEOUT_MS, 'connect without credentials');
    try {
      await assert.rejects(h.withTimeout(c.put('k', 'v'), h.OP_TIMEOUT_MS, 'put'),
        (e) => String(e).includes("java.lang.SecurityException: ISPN006017: Operation 'PUT' requires authentication"));
    } finally { await c.disconnect(); }
  });
});
