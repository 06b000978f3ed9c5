'use strict';
// Server-side iteration (ITERATION_START/NEXT/END) through the client's iterator(), per version.
//
// Hot Rod 2.2: skipped. Iteration exists since protocol 2.3, and the client's 2.2 protocol object has
// no IteratorMixin (lib/protocols.js: Protocol22 lacks encodeIterStart), so `iterator()` throws
// client-side before anything reaches the server.

const {describe, test, before, after, beforeEach} = require('node:test');
const h = require('../lib/harness');
const {assert, vnum, verNum} = h;

// Drains an iterator, with a bound so a server that never reports "no more entries" fails the test.
async function drain(it, maxEntries) {
  const seen = [];
  for (let i = 0; i <= maxEntries + 1; i++) {
    const e = await it.next();
    if (e.done) return seen;
    seen.push(e);
  }
  assert.fail(`iterator did not finish after ${maxEntries + 1} entries`);
}

function exactlyOnce(seen, expected) {
  const counts = new Map();
  for (const e of seen) counts.set(e.key, (counts.get(e.key) || 0) + 1);
  const dup = [...counts].filter(([, n]) => n > 1).map(([k]) => k);
  assert.deepEqual(dup, [], 'keys returned more than once');
  const missing = [...expected.keys()].filter((k) => !counts.has(k));
  assert.deepEqual(missing, [], 'keys never returned');
  const extra = [...counts.keys()].filter((k) => !expected.has(k));
  assert.deepEqual(extra, [], 'unexpected keys');
  for (const e of seen) assert.equal(e.value, expected.get(e.key), `value of ${e.key}`);
}

for (const version of h.VERSIONS) {
  const noIteration = vnum(version) < 25
    ? 'the client has no iterator for protocol 2.2 (iteration is Hot Rod 2.3+)' : false;

  describe(`Hot Rod ${version}: iteration`, {timeout: 120000}, () => {
    let c;
    const T = {timeout: h.TEST_TIMEOUT_MS, skip: noIteration};

    before(async () => { c = h.bounded(await h.connect(version)); });
    after(async () => { await h.disconnect(c); });
    beforeEach(async () => { await c.clear(); });

    async function populate(n) {
      const expected = new Map();
      const mortal = new Set(); // lifespan 1 h and max-idle 10 min
      const idle = new Set();   // max-idle 2 min only
      const pairs = [];
      for (let i = 0; i < n; i++) {
        const k = `it-${i}`;
        const v = `value-${i}-ü-${'#'.repeat(i % 11)}`;
        expected.set(k, v);
        if (i % 5 === 0) mortal.add(k);
        else if (i % 7 === 0) idle.add(k);
        else pairs.push({key: k, value: v});
      }
      await c.putAll(pairs);
      for (const k of mortal) await c.put(k, expected.get(k), {lifespan: '1h', maxIdle: '10m'});
      for (const k of idle) await c.put(k, expected.get(k), {maxIdle: '2m'});
      assert.equal(await c.size(), n);
      return {expected, mortal, idle};
    }

    for (const batch of [1, 2, 100]) {
      for (const metadata of [false, true]) {
        test(`50 entries, batch size ${batch}, metadata ${metadata}: every entry exactly once`, T, async () => {
          const {expected, mortal, idle} = await populate(50);
          const it = await c.iterator(batch, {metadata});
          const seen = await drain(it, 50);
          exactlyOnce(seen, expected);
          // Exhausted iterators keep answering done.
          assert.equal((await it.next()).done, true);
          await it.close();
          for (const e of seen) {
            assert.equal(e.done, false);
            if (!metadata) {
              assert.equal(e.version, undefined, 'no metadata requested, none sent');
              continue;
            }
            const m = await c.getWithMetadata(e.key);
            assert.equal(verNum(e.version), verNum(m.version), `version of ${e.key}`);
            if (mortal.has(e.key)) {
              assert.deepEqual([e.lifespan, e.maxIdle], [3600, 600], `expiry of ${e.key}`);
              assert.ok(e.created > 0 && e.lastUsed > 0, `timestamps of ${e.key}`);
            } else if (idle.has(e.key)) {
              assert.deepEqual([e.created, e.lifespan, e.maxIdle], [-1, -1, 120], `expiry of ${e.key}`);
              assert.ok(e.lastUsed > 0, `lastUsed of ${e.key}`);
            } else {
              assert.deepEqual([e.created, e.lifespan, e.lastUsed, e.maxIdle], [-1, -1, -1, -1], `immortal ${e.key}`);
            }
          }
        });
      }
    }

    test('empty cache: the first next() is done', T, async () => {
      const it = await c.iterator(10);
      assert.deepEqual(await drain(it, 0), []);
      await it.close();
    });

    test('next() after close() ends the iteration; a second close() reports false', T, async () => {
      await populate(5);
      const it = await c.iterator(1);
      assert.equal((await it.next()).done, false);
      assert.equal(await it.close(), true, 'ITERATION_END of a live iteration succeeds');
      // The client asks the server for the next batch of the closed iteration: the server must
      // answer "invalid iteration" (status 0x05, empty body), which the client sees as the end.
      assert.deepEqual(await it.next(), {done: true});
      assert.equal(await it.close(), false, 'ITERATION_END of an unknown iteration: status 0x05');
      assert.equal(await c.size(), 5, 'the connection is still in sync');
    });

    test('close early, then a fresh iteration sees everything; two iterations interleaved', T, async () => {
      const {expected} = await populate(20);
      const early = await c.iterator(3);
      const first = await early.next();
      assert.equal(first.done, false);
      assert.ok(expected.has(first.key));
      await early.close();

      const a = await c.iterator(4, {metadata: true});
      const b = await c.iterator(7);
      const seenA = [];
      const seenB = [];
      let doneA = false;
      let doneB = false;
      for (let i = 0; i < 100 && !(doneA && doneB); i++) {
        if (!doneA) { const e = await a.next(); if (e.done) doneA = true; else seenA.push(e); }
        if (!doneB) { const e = await b.next(); if (e.done) doneB = true; else seenB.push(e); }
      }
      assert.ok(doneA && doneB, 'both iterations finish');
      exactlyOnce(seenA, expected);
      exactlyOnce(seenB, expected);
      await a.close();
      await b.close();
    });

    test('iteration is per cache and carries large and unicode values', T, async () => {
      const other = h.bounded(await h.connect(version, 'sessions'));
      try {
        await other.clear();
        const expected = new Map([
          ['big-1', 'a'.repeat(300 * 1024)], ['big-2', '€'.repeat(100 * 1024)], ['ключ', '😀 värde'],
        ]);
        for (const [k, v] of expected) await other.put(k, v);
        await c.put('only-in-default', 'x');
        const it = await other.iterator(2, {metadata: true});
        exactlyOnce(await drain(it, 3), expected);
        await it.close();
        const itDefault = await c.iterator(2);
        exactlyOnce(await drain(itDefault, 1), new Map([['only-in-default', 'x']]));
        await itDefault.close();
        await other.clear();
      } finally { await h.disconnect(other); }
    });
  });
}
