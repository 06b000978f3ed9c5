'use strict';
// Real expiry: short lifespan and max-idle entries disappear, and reads refresh max-idle.
// About 3 s of real waiting per protocol version, so the versions run concurrently, each on its own
// connection and its own cache; the tests inside one version run one after the other.

const {describe, test, before, after, beforeEach} = require('node:test');
const h = require('../lib/harness');
const {assert, vnum, sleep} = h;

const CACHE_OF = {
  'auto': 'work', '4.1': 'sessions', '4.0': 'clientSessions', '3.1': 'offlineSessions',
  '3.0': 'offlineClientSessions', '2.9': 'loginFailures', '2.5': 'actionTokens', '2.2': 'authenticationSessions',
};

describe('expiry, all versions at once', {concurrency: true, timeout: 120000}, () => {
  for (const version of h.VERSIONS) {
    describe(`Hot Rod ${version}: expiry (cache ${CACHE_OF[version]})`, {concurrency: 1, timeout: 120000}, () => {
      let c;
      const T = {timeout: h.TEST_TIMEOUT_MS};

      before(async () => { c = h.bounded(await h.connect(version, CACHE_OF[version])); });
      after(async () => { await h.disconnect(c); });
      beforeEach(async () => { await c.clear(); });

      test('lifespan 1s and maxIdle 1s entries expire; get refreshes maxIdle', T, async () => {
        const A = 'lifespan-1s';       // dies at t = 1 s whatever happens
        const B = 'maxidle-1s';        // never read: dies at t = 1 s
        const C = 'maxidle-refreshed'; // read every 500 ms: survives while read
        const D = 'lifespan-1h';       // control
        const E = 'lifespan-1500ms';   // dies at t = 1.5 s; checked alive at t = 0
        await c.put(A, 'a', {lifespan: '1s'});
        await c.put(B, 'b', {maxIdle: '1s'});
        await c.put(C, 'c', {maxIdle: '1000ms'});
        await c.put(D, 'd', {lifespan: '1h'});
        await c.put(E, 'e', {lifespan: '1500ms'});
        const t0 = Date.now();
        const mA = await c.getWithMetadata(A);
        assert.ok(mA, 'fresh 1 s entry is readable');
        assert.equal(mA.lifespan, 1);
        assert.equal((await c.getWithMetadata(E)).lifespan, 1);
        assert.equal(await c.size(), 5);

        await sleep(500 - (Date.now() - t0));
        assert.equal(await c.get(C), 'c', 't=0.5s');
        await sleep(1000 - (Date.now() - t0));
        assert.equal(await c.get(C), 'c', 't=1.0s');
        const lastRead = Date.now();
        await sleep(Math.max(0, 1450 - (Date.now() - t0)));

        // t ≈ 1.45 s
        assert.equal(await c.get(A), undefined, 'lifespan 1 s entry must be gone');
        assert.equal(await c.containsKey(A), false);
        assert.equal(await c.getWithMetadata(A), undefined);
        assert.equal(await c.get(B), undefined, 'idle 1 s entry must be gone');
        assert.equal(await c.containsKey(B), false);
        const mC = await c.getWithMetadata(C);
        assert.ok(mC, 'refreshed max-idle entry must survive');
        assert.equal(mC.maxIdle, 1);
        assert.ok(mC.lastUsed > t0 + 500, `lastUsed ${mC.lastUsed} must move with the reads (put at ~${t0}, last read ${lastRead})`);
        assert.equal(await c.get(D), 'd');
        const got = await c.getAll([A, B, C, D]);
        assert.deepEqual(got.map((e) => e.key).sort(), [C, D].sort(), 'getAll skips expired entries');
        assert.equal(await c.remove(A), false, 'an expired entry cannot be removed');
        assert.equal(await c.putIfAbsent(B, 'b2'), true, 'an expired key counts as absent');
        assert.equal(await c.get(B), 'b2');
        await c.remove(B);

        await sleep(Math.max(0, 1700 - (Date.now() - t0)));
        assert.equal(await c.get(E), undefined, 'lifespan 1500 ms entry must be gone at t=1.7s');
        assert.equal(await c.size(), 2, 'size counts only live entries (C, D)');
        if (vnum(version) >= 25) { // the client has no iterator at 2.2
          const it = await c.iterator(10);
          const keys = [];
          for (let e = await it.next(); !e.done && keys.length < 10; e = await it.next()) keys.push(e.key);
          await it.close();
          assert.deepEqual(keys.sort(), [C, D].sort(), 'iteration skips expired entries');
        }

        // Stop reading C: it goes after a second of idleness.
        await sleep(1300);
        assert.equal(await c.get(C), undefined, 'max-idle entry expires once no longer read');
        assert.equal(await c.get(D), 'd');
      });

      test('overwriting with a new lifespan restarts expiry; replace sets a new lifespan', T, async () => {
        const k = 'restart';
        await c.put(k, 'v1', {lifespan: '600ms'});
        await sleep(300);
        await c.put(k, 'v2', {lifespan: '1h'});
        await sleep(450);
        assert.equal(await c.get(k), 'v2', 'the second put replaced the short lifespan');
        await c.replace(k, 'v3', {lifespan: '500ms'});
        assert.equal(await c.get(k), 'v3');
        await sleep(700);
        assert.equal(await c.get(k), undefined, 'the replace set a short lifespan again');
      });
    });
  }
});
