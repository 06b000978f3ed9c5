'use strict';
// Remote transactions of the npm `infinispan` 0.16.3 client against Ironrod: the client buffers
// writes, reads through GET_WITH_METADATA to record versions, and commits with one-phase
// PREPARE_TX_2 (2.9+); rollback sends ROLLBACK_TX. Runs on Keycloak's transactional `sessions`
// cache (NON_DURABLE_XA, PESSIMISTIC, acquire timeout 0).

const {describe, test, before, after} = require('node:test');
const h = require('../lib/harness');
const {assert, vnum} = h;

const CACHE = 'sessions';

for (const version of h.VERSIONS.filter((v) => vnum(v) >= 29)) {
  describe(`Hot Rod ${version}: transactions`, {timeout: 120000}, () => {
    let c, other;
    const T = {timeout: h.TEST_TIMEOUT_MS};

    before(async () => {
      c = h.bounded(await h.connect(version, CACHE));
      other = h.bounded(await h.connect(version, CACHE));
    });
    after(async () => {
      await h.disconnect(c);
      await h.disconnect(other);
    });

    test('commit makes every buffered write visible at once', T, async () => {
      const p = h.uniq('tx-commit');
      await other.put(p + 'gone', 'x');
      const tm = c.getTransactionManager();
      await tm.begin();
      await c.put(p + 'a', '1');
      await c.put(p + 'b', '2');
      await c.remove(p + 'gone');
      assert.equal(await c.get(p + 'a'), '1', 'the transaction reads its own writes');
      assert.equal(await other.get(p + 'a'), undefined, 'nothing is visible before commit');
      await tm.commit();
      assert.equal(tm.isActive(), false);
      assert.equal(await other.get(p + 'a'), '1');
      assert.equal(await other.get(p + 'b'), '2');
      assert.equal(await other.get(p + 'gone'), undefined);
    });

    test('rollback leaves nothing behind and nothing locked', T, async () => {
      const p = h.uniq('tx-rollback');
      await other.put(p + 'kept', '0');
      const tm = c.getTransactionManager();
      await tm.begin();
      await c.put(p + 'a', '1');
      await c.put(p + 'kept', 'changed');
      await tm.rollback();
      assert.equal(await other.get(p + 'a'), undefined);
      assert.equal(await other.get(p + 'kept'), '0');
      await other.put(p + 'a', 'free');
      assert.equal(await other.get(p + 'a'), 'free');
    });

    test('a concurrent change of a value read fails the commit (write skew)', T, async () => {
      const k = h.uniq('tx-skew') + 'k';
      await other.put(k, '0');
      const tm = c.getTransactionManager();
      await tm.begin();
      assert.equal(await c.get(k), '0');
      await c.put(k, 'mine');
      await other.put(k, 'theirs');
      const err = await h.rejection(tm.commit());
      assert.match(h.errorText(err), /XA code 100/, 'XA_RBROLLBACK');
      assert.equal(tm.isActive(), false);
      assert.equal(await other.get(k), 'theirs');
      // A key that must not exist yet, but does, fails the same way.
      await tm.begin();
      assert.equal(await c.get(k + 'new'), undefined);
      await c.put(k + 'new', 'mine');
      await other.put(k + 'new', 'theirs');
      assert.match(h.errorText(await h.rejection(tm.commit())), /XA code 100/);
    });

    test('clients incrementing one counter in transactions lose no update', T, async () => {
      const k = h.uniq('tx-counter') + 'k';
      await other.put(k, '0');
      const clients = [];
      for (let i = 0; i < 4; i++) clients.push(h.bounded(await h.connect(version, CACHE)));
      let retries = 0;
      try {
        await Promise.all(clients.map(async (cl) => {
          const tm = cl.getTransactionManager();
          for (let n = 0; n < 25; n++) {
            for (let attempt = 0; ; attempt++) {
              assert.ok(attempt < 10000, 'increment starved');
              await tm.begin();
              const v = Number(await cl.get(k));
              await cl.put(k, String(v + 1));
              try {
                await tm.commit();
                break;
              } catch (e) {
                assert.match(h.errorText(e), /XA code 100/);
                retries++;
              }
            }
          }
        }));
      } finally {
        for (const cl of clients) await h.disconnect(cl);
      }
      assert.equal(await other.get(k), '100', `every commit counts once (retries: ${retries})`);
    });
  });
}
