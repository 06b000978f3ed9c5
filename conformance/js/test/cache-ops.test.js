'use strict';
// Key/value operations of the npm `infinispan` 0.16.3 client against Ironrod, once per protocol
// version. Every describe block owns one connection on the `default` cache, cleared before each test.

const {describe, test, before, after, beforeEach} = require('node:test');
const h = require('../lib/harness');
const {assert, infinispan, vnum, prevValue, verNum, rejection, errorText} = h;

const F = infinispan.flags;
const BAD_VERSION = Buffer.from([0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x7a, 0x79, 0x78]);

for (const version of h.VERSIONS) {
  describe(`Hot Rod ${version}: cache operations`, {timeout: 120000}, () => {
    let c;
    const T = {timeout: h.TEST_TIMEOUT_MS};

    before(async () => { c = h.bounded(await h.connect(version)); });
    after(async () => { await h.disconnect(c); });
    beforeEach(async () => { await c.clear(); });

    test('connect, ping and negotiated protocol version', T, async () => {
      assert.equal(c.getProtocolVersion(), h.expectedVersion(version));
      assert.equal(await c.ping(), undefined);
      // A second, independent connection negotiates the same way.
      const c2 = await h.connect(version);
      try {
        assert.equal(c2.getProtocolVersion(), h.expectedVersion(version));
        await h.withTimeout(c2.ping(), h.OP_TIMEOUT_MS, 'ping on second client');
      } finally { await h.disconnect(c2); }
    });

    test('put / get / containsKey / remove', T, async () => {
      const k = h.uniq('basic');
      assert.equal(await c.get(k), undefined);
      assert.equal(await c.containsKey(k), false);
      assert.equal(await c.put(k, 'v1'), undefined);
      assert.equal(await c.get(k), 'v1');
      assert.equal(await c.containsKey(k), true);
      await c.put(k, 'v2');
      assert.equal(await c.get(k), 'v2', 'put overwrites');
      assert.equal(await c.remove(k), true);
      assert.equal(await c.get(k), undefined);
      assert.equal(await c.containsKey(k), false);
      assert.equal(await c.remove(k), false, 'remove of an absent key');
      // Empty value round-trips (distinct from absence).
      await c.put(k, '');
      assert.equal(await c.get(k), '');
      assert.equal(await c.containsKey(k), true);
    });

    test('put and remove with {previous: true}', T, async () => {
      const k = h.uniq('prev');
      assert.equal(await c.put(k, 'p1', {previous: true}), undefined, 'put on an absent key: no previous');
      const m1 = await c.getWithMetadata(k);
      const prev = await c.put(k, 'p2', {previous: true});
      assert.equal(prevValue(version, prev), 'p1');
      if (vnum(version) >= 40) {
        assert.equal(verNum(prev.version), verNum(m1.version), '4.0 PREV carries the old entry version');
        assert.equal(prev.lifespan, -1);
        assert.equal(prev.maxIdle, -1);
      }
      assert.equal(await c.get(k), 'p2');
      // Previous of a mortal entry carries its metadata at 4.0+.
      await c.put(k, 'p3', {lifespan: '1h', maxIdle: '10m'});
      const prev3 = await c.put(k, 'p4', {previous: true});
      assert.equal(prevValue(version, prev3), 'p3');
      if (vnum(version) >= 40) {
        assert.equal(prev3.lifespan, 3600);
        assert.equal(prev3.maxIdle, 600);
        assert.ok(prev3.created > 0 && prev3.lastUsed > 0);
      }
      const removed = await c.remove(k, {previous: true});
      assert.equal(prevValue(version, removed), 'p4');
      assert.equal(await c.get(k), undefined);
      assert.equal(await c.remove(k, {previous: true}), undefined, 'remove of an absent key: no previous');
    });

    test('putIfAbsent: absent, present, with previous', T, async () => {
      const k = h.uniq('pia');
      assert.equal(await c.putIfAbsent(k, 'a1'), true);
      assert.equal(await c.get(k), 'a1');
      assert.equal(await c.putIfAbsent(k, 'a2'), false);
      assert.equal(await c.get(k), 'a1', 'putIfAbsent on a present key leaves it alone');
      assert.equal(prevValue(version, await c.putIfAbsent(k, 'a3', {previous: true})), 'a1');
      assert.equal(await c.get(k), 'a1');
      const k2 = h.uniq('pia');
      assert.equal(await c.putIfAbsent(k2, 'b1', {previous: true}), undefined);
      assert.equal(await c.get(k2), 'b1');
    });

    test('replace: absent, present, with previous', T, async () => {
      const k = h.uniq('rep');
      assert.equal(await c.replace(k, 'r1'), false);
      assert.equal(await c.containsKey(k), false, 'replace must not create');
      assert.equal(await c.replace(k, 'r1', {previous: true}), undefined);
      assert.equal(await c.containsKey(k), false);
      await c.put(k, 'r0');
      assert.equal(await c.replace(k, 'r2'), true);
      assert.equal(await c.get(k), 'r2');
      assert.equal(prevValue(version, await c.replace(k, 'r3', {previous: true})), 'r2');
      assert.equal(await c.get(k), 'r3');
    });

    test('replaceWithVersion: match, mismatch, absent, with previous', T, async () => {
      const k = h.uniq('rwv');
      await c.put(k, 'x0');
      const m0 = await c.getWithMetadata(k);
      assert.equal(await c.replaceWithVersion(k, 'x1', BAD_VERSION), false);
      assert.equal(await c.get(k), 'x0');
      const mm = await c.replaceWithVersion(k, 'x1', BAD_VERSION, {previous: true});
      assert.equal(prevValue(version, mm), 'x0', 'mismatch with previous returns the current value');
      if (vnum(version) >= 40) {
        assert.equal(verNum(mm.version), verNum(m0.version), '4.0 PREV of a mismatch carries the current version');
      }
      assert.equal(await c.get(k), 'x0');
      assert.equal(verNum((await c.getWithMetadata(k)).version), verNum(m0.version), 'failed replace keeps the version');

      const okPrev = await c.replaceWithVersion(k, 'x2', m0.version, {previous: true});
      assert.equal(prevValue(version, okPrev), 'x0');
      const m2 = await c.getWithMetadata(k);
      assert.equal(m2.value, 'x2');
      assert.notEqual(verNum(m2.version), verNum(m0.version), 'a write gives a new version');
      assert.equal(await c.replaceWithVersion(k, 'x3', m0.version), false, 'stale version');
      assert.equal(await c.replaceWithVersion(k, 'x3', m2.version), true);
      assert.equal(await c.get(k), 'x3');

      const absent = h.uniq('rwv-absent');
      assert.equal(await c.replaceWithVersion(absent, 'z', m2.version), false);
      assert.equal(await c.replaceWithVersion(absent, 'z', m2.version, {previous: true}), undefined);
      assert.equal(await c.containsKey(absent), false);
    });

    test('removeWithVersion: match, mismatch, absent, with previous', T, async () => {
      const k = h.uniq('rmv');
      await c.put(k, 'y0');
      const m0 = await c.getWithMetadata(k);
      assert.equal(await c.removeWithVersion(k, BAD_VERSION), false);
      assert.equal(await c.get(k), 'y0');
      assert.equal(prevValue(version, await c.removeWithVersion(k, BAD_VERSION, {previous: true})), 'y0');
      assert.equal(await c.get(k), 'y0');
      assert.equal(prevValue(version, await c.removeWithVersion(k, m0.version, {previous: true})), 'y0');
      assert.equal(await c.containsKey(k), false);

      await c.put(k, 'y1');
      const m1 = await c.getWithMetadata(k);
      assert.equal(await c.removeWithVersion(k, m0.version), false, 'stale version');
      assert.equal(await c.removeWithVersion(k, m1.version), true);
      assert.equal(await c.get(k), undefined);
      assert.equal(await c.removeWithVersion(k, m1.version), false, 'absent key');
      assert.equal(await c.removeWithVersion(k, m1.version, {previous: true}), undefined);
    });

    test('getWithMetadata: immortal entry, versions change on every write', T, async () => {
      const k = h.uniq('meta');
      assert.equal(await c.getWithMetadata(k), undefined);
      await c.put(k, 'm1');
      const a = await c.getWithMetadata(k);
      assert.equal(a.value, 'm1');
      assert.deepEqual([a.created, a.lifespan, a.lastUsed, a.maxIdle], [-1, -1, -1, -1]);
      assert.ok(verNum(a.version) > 0n, 'versions are strictly positive');
      const a2 = await c.getWithMetadata(k);
      assert.equal(verNum(a2.version), verNum(a.version), 'a read does not change the version');
      await c.put(k, 'm2');
      const b = await c.getWithMetadata(k);
      assert.notEqual(verNum(b.version), verNum(a.version));
      await c.replace(k, 'm3');
      const d = await c.getWithMetadata(k);
      assert.notEqual(verNum(d.version), verNum(b.version));
      // Explicit infinite (-1) and default (0) durations are immortal on these caches.
      await c.put(k, 'm4', {lifespan: -1, maxIdle: -1});
      const e = await c.getWithMetadata(k);
      assert.deepEqual([e.value, e.lifespan, e.maxIdle, e.created, e.lastUsed], ['m4', -1, -1, -1, -1]);
      await c.put(k, 'm5', {lifespan: 0, maxIdle: 0});
      const f = await c.getWithMetadata(k);
      assert.deepEqual([f.value, f.lifespan, f.maxIdle], ['m5', -1, -1]);
    });

    test('getWithMetadata: mortal entries report created/lifespan/lastUsed/maxIdle', T, async () => {
      const k = h.uniq('mortal');
      const t0 = Date.now();
      await c.put(k, 'v', {lifespan: '1h', maxIdle: '30m'});
      const t1 = Date.now();
      const m = await c.getWithMetadata(k);
      assert.equal(m.value, 'v');
      assert.equal(m.lifespan, 3600);
      assert.equal(m.maxIdle, 1800);
      // Same machine, same clock: the timestamps are ms since the epoch around the put.
      assert.ok(m.created >= t0 - 2000 && m.created <= t1 + 2000, `created ${m.created} not in [${t0}, ${t1}]`);
      assert.ok(m.lastUsed >= m.created - 1 && m.lastUsed <= Date.now() + 2000, `lastUsed ${m.lastUsed}`);

      const k2 = h.uniq('mortal');
      await c.put(k2, 'v', {lifespan: '5m'});
      const m2 = await c.getWithMetadata(k2);
      assert.equal(m2.lifespan, 300);
      assert.ok(m2.created > 0);
      assert.equal(m2.maxIdle, -1, 'no max-idle: INFINITE_MAXIDLE');
      assert.equal(m2.lastUsed, -1);

      const k3 = h.uniq('mortal');
      await c.put(k3, 'v', {maxIdle: '45s'});
      const m3 = await c.getWithMetadata(k3);
      assert.equal(m3.maxIdle, 45);
      assert.ok(m3.lastUsed > 0);
      assert.equal(m3.lifespan, -1, 'no lifespan: INFINITE_LIFESPAN');
      assert.equal(m3.created, -1);

      // Overwriting a mortal entry with an immortal one drops the expiry.
      await c.put(k, 'w');
      const m4 = await c.getWithMetadata(k);
      assert.deepEqual([m4.value, m4.lifespan, m4.maxIdle], ['w', -1, -1]);
    });

    test('lifespan and maxIdle units are converted to seconds', T, async () => {
      const cases = [
        ['1s', 1], ['1500ms', 1], ['2999ms', 2], ['90s', 90], ['1m', 60], ['7m', 420], ['1h', 3600],
        ['2h', 7200], ['1d', 86400], ['3d', 259200], ['2500000μs', 2], ['3000000000ns', 3],
      ];
      const p = h.uniq('units');
      for (const [dur, secs] of cases) {
        await c.put(`${p}-ls-${dur}`, dur, {lifespan: dur});
        await c.put(`${p}-mi-${dur}`, dur, {maxIdle: dur});
        await c.put(`${p}-both-${dur}`, dur, {lifespan: dur, maxIdle: dur});
      }
      for (const [dur, secs] of cases) {
        const ls = await c.getWithMetadata(`${p}-ls-${dur}`);
        const mi = await c.getWithMetadata(`${p}-mi-${dur}`);
        const both = await c.getWithMetadata(`${p}-both-${dur}`);
        assert.ok(ls && mi && both, `entries with ${dur} must still exist`);
        assert.equal(ls.lifespan, secs, `lifespan ${dur}`);
        assert.equal(ls.maxIdle, -1);
        assert.equal(mi.maxIdle, secs, `maxIdle ${dur}`);
        assert.equal(mi.lifespan, -1);
        assert.deepEqual([both.lifespan, both.maxIdle], [secs, secs], `both ${dur}`);
      }
      // putIfAbsent, replace and putAll carry expiry too.
      const k = h.uniq('units-ops');
      await c.putIfAbsent(k, 'a', {lifespan: '2h'});
      assert.equal((await c.getWithMetadata(k)).lifespan, 7200);
      await c.replace(k, 'b', {lifespan: '3m', maxIdle: '1m'});
      const r = await c.getWithMetadata(k);
      assert.deepEqual([r.value, r.lifespan, r.maxIdle], ['b', 180, 60]);
      await c.replaceWithVersion(k, 'c', r.version, {maxIdle: '2d'});
      const rv = await c.getWithMetadata(k);
      assert.deepEqual([rv.value, rv.lifespan, rv.maxIdle], ['c', -1, 172800]);
      await c.putAll([{key: `${k}-pa`, value: 'd'}], {lifespan: '1d', maxIdle: '1h'});
      const pa = await c.getWithMetadata(`${k}-pa`);
      assert.deepEqual([pa.value, pa.lifespan, pa.maxIdle], ['d', 86400, 3600]);
    });

    test('durations beyond 30 days: absolute Unix time below 3.0, plain durations from 3.0', T, async () => {
      const p = h.uniq('abs');
      const abs = Math.floor(Date.now() / 1000) + 3600; // one hour from now, as Unix seconds
      await c.put(`${p}-ls`, 'v', {lifespan: `${abs}s`});
      await c.put(`${p}-mi`, 'v', {maxIdle: `${abs}s`});
      await c.put(`${p}-30d`, 'v', {lifespan: '30d'}); // exactly 30 days: still a duration everywhere
      await c.put(`${p}-31d`, 'v', {lifespan: '31d'}); // below 3.0: Unix time 31 days after 1970
      // Below 3.0 that entry gets a remaining lifespan of 0 ms, which (as in Infinispan, where an
      // entry expires once now > created + lifespan) is still visible within the same millisecond.
      await h.sleep(20);
      const ls = await c.getWithMetadata(`${p}-ls`);
      const mi = await c.getWithMetadata(`${p}-mi`);
      const d30 = await c.getWithMetadata(`${p}-30d`);
      const d31 = await c.getWithMetadata(`${p}-31d`);
      assert.ok(ls && mi && d30, 'entries must exist');
      assert.equal(d30.lifespan, 30 * 86400);
      if (vnum(version) < 30) {
        assert.ok(ls.lifespan >= 3590 && ls.lifespan <= 3600, `2.x: lifespan is an absolute time one hour ahead, got ${ls.lifespan}`);
        assert.ok(mi.maxIdle >= 3590 && mi.maxIdle <= 3600, `2.x: maxIdle is an absolute time one hour ahead, got ${mi.maxIdle}`);
        assert.equal(d31, undefined, '2.x: 31 d is a Unix time in 1970, so the entry is already expired');
      } else {
        assert.equal(ls.lifespan, abs, '3.0+: the number is a literal duration');
        assert.equal(mi.maxIdle, abs);
        assert.ok(d31, '3.0+: 31 days is a duration');
        assert.equal(d31.lifespan, 31 * 86400);
      }
    });

    test('a client without a cache name uses the default cache', T, async () => {
      const k = h.uniq('nameless');
      await c.put(k, 'in-default');
      const c0 = h.bounded(await h.connect(version, ''));
      try {
        assert.equal(await c0.get(k), 'in-default');
        await c0.put(`${k}-2`, 'via-nameless');
        assert.equal(await c.get(`${k}-2`), 'via-nameless');
      } finally { await h.disconnect(c0); }
    });

    test('putAll / getAll, including missing keys', T, async () => {
      const p = h.uniq('bulk');
      const pairs = [];
      for (let i = 0; i < 25; i++) pairs.push({key: `${p}-${i}`, value: `val-${i}`});
      assert.equal(await c.putAll(pairs), undefined);
      const keys = pairs.map((e) => e.key).concat([`${p}-missing-1`, `${p}-missing-2`]);
      const got = await c.getAll(keys);
      assert.equal(got.length, 25, 'only the present keys come back');
      const sortBy = (a) => a.slice().sort((x, y) => (x.key < y.key ? -1 : 1));
      assert.deepEqual(sortBy(got), sortBy(pairs));
      assert.deepEqual(await c.getAll([`${p}-missing-1`]), []);
      assert.deepEqual(await c.getAll([]), []);
      assert.equal(await c.get(`${p}-7`), 'val-7');
      assert.equal(await c.size(), 25);
      // putAll overwrites existing keys.
      await c.putAll([{key: `${p}-0`, value: 'new'}, {key: `${p}-new`, value: 'n'}]);
      const got2 = await c.getAll([`${p}-0`, `${p}-new`, `${p}-1`]);
      assert.deepEqual(sortBy(got2), sortBy([{key: `${p}-0`, value: 'new'}, {key: `${p}-new`, value: 'n'},
        {key: `${p}-1`, value: 'val-1'}]));
      // A big batch: 5000 entries in one PUT_ALL and one GET_ALL.
      const big = [];
      for (let i = 0; i < 5000; i++) big.push({key: `${p}-big-${i}`, value: `b${i}`});
      await c.putAll(big);
      const gotBig = await c.getAll(big.map((e) => e.key));
      assert.equal(gotBig.length, 5000);
      assert.deepEqual(sortBy(gotBig), sortBy(big));
    });

    test('clear and size', T, async () => {
      assert.equal(await c.size(), 0, 'cleared before each test');
      const p = h.uniq('size');
      for (let i = 0; i < 7; i++) await c.put(`${p}-${i}`, 'x');
      assert.equal(await c.size(), 7);
      await c.put(`${p}-0`, 'y');
      assert.equal(await c.size(), 7, 'overwrite does not grow the cache');
      await c.remove(`${p}-1`);
      assert.equal(await c.size(), 6);
      assert.equal(await c.clear(), undefined);
      assert.equal(await c.size(), 0);
      assert.equal(await c.get(`${p}-2`), undefined);
      assert.equal(await c.containsKey(`${p}-3`), false);
      await c.clear(); // clearing an empty cache is fine
      assert.equal(await c.size(), 0);
    });

    test('stats: names present and counters move', T, async () => {
      const names = ['timeSinceStart', 'currentNumberOfEntries', 'stores', 'retrievals', 'hits', 'misses',
        'removeHits', 'removeMisses', 'approximateEntries', 'approximateEntriesUnique'];
      const s0 = await c.stats();
      for (const n of names) {
        assert.ok(n in s0, `stat ${n} missing: ${JSON.stringify(s0)}`);
        assert.ok(Number.isFinite(Number(s0[n])), `stat ${n} is not a number: ${s0[n]}`);
      }
      const p = h.uniq('stats');
      await c.put(`${p}-1`, 'a');
      await c.put(`${p}-2`, 'b');
      await c.put(`${p}-3`, 'c');
      assert.equal(await c.get(`${p}-1`), 'a');
      assert.equal(await c.get(`${p}-2`), 'b');
      assert.equal(await c.get(`${p}-missing`), undefined);
      assert.equal(await c.remove(`${p}-3`), true);
      assert.equal(await c.remove(`${p}-missing`), false);
      const s1 = await c.stats();
      const d = (n) => Number(s1[n]) - Number(s0[n]);
      assert.equal(d('stores'), 3, 'stores');
      assert.equal(d('hits'), 2, 'hits');
      assert.equal(d('misses'), 1, 'misses');
      assert.equal(d('retrievals'), 3, 'retrievals');
      assert.equal(d('removeHits'), 1, 'removeHits');
      assert.equal(d('removeMisses'), 1, 'removeMisses');
      assert.equal(Number(s1.currentNumberOfEntries), 2, 'currentNumberOfEntries');
      assert.equal(Number(s1.approximateEntries), 2, 'approximateEntries');
      assert.ok(Number(s1.timeSinceStart) >= Number(s0.timeSinceStart));
    });

    test('flags are accepted and do not change results', T, async () => {
      const k = h.uniq('flags');
      await c.put(k, 'f1', {flags: F.SKIP_LISTENER_NOTIFICATION});
      assert.equal(await c.get(k), 'f1');
      await c.put(k, 'f2', {flags: F.SKIP_CACHE_LOAD | F.SKIP_INDEXING});
      assert.equal(await c.get(k), 'f2');
      // DEFAULT_* flags with no explicit expiry: the cache default (immortal here).
      await c.put(k, 'f3', {flags: F.DEFAULT_LIFESPAN | F.DEFAULT_MAXIDLE});
      const m = await c.getWithMetadata(k);
      assert.deepEqual([m.value, m.lifespan, m.maxIdle], ['f3', -1, -1]);
      // FORCE_RETURN_VALUE given as a raw flag together with {previous: true}. (A raw
      // FORCE_RETURN_VALUE flag *without* {previous: true} makes this client ignore the PREV body
      // the server correctly sends, desynchronising the connection — a client quirk that real
      // Infinispan triggers too, so it is not tested.)
      const prev = await c.put(k, 'f4', {flags: F.FORCE_RETURN_VALUE, previous: true});
      assert.equal(prevValue(version, prev), 'f3');
      const all = F.SKIP_CACHE_LOAD | F.SKIP_INDEXING | F.SKIP_LISTENER_NOTIFICATION;
      assert.equal(await c.putIfAbsent(k, 'f5', {flags: all}), false);
      assert.equal(await c.replace(k, 'f6', {flags: all}), true);
      await c.putAll([{key: `${k}-pa`, value: 'pa'}], {flags: all});
      assert.equal(await c.get(`${k}-pa`), 'pa');
      assert.equal(await c.remove(k, {flags: F.SKIP_LISTENER_NOTIFICATION}), true);
      assert.equal(await c.containsKey(k), false);
    });

    test('an unknown cache rejects with the exact CacheNotFoundException text', T, async () => {
      const name = `no-such-cache-${version.replace('.', '')}`;
      const e = await rejection(h.connect(version, name));
      assert.equal(errorText(e),
        `org.infinispan.server.hotrod.CacheNotFoundException: Cache with name '${name}' not found amongst the configured caches`);
      // The healthy connection is unaffected.
      await c.put('after-unknown-cache', 'ok');
      assert.equal(await c.get('after-unknown-cache'), 'ok');
    });

    test('execute of an unknown task rejects, and the connection survives', T, async () => {
      const e1 = await rejection(c.execute('unknown-task', {p1: 'v1', p2: 'v2'}));
      assert.equal(typeof e1, 'string', 'error frames reject with the server message string');
      assert.equal(e1, "java.lang.IllegalArgumentException: ISPN027002: Unknown task 'unknown-task'");
      const e2 = await rejection(c.execute('another-unknown-task'));
      assert.equal(e2, "java.lang.IllegalArgumentException: ISPN027002: Unknown task 'another-unknown-task'");
      const k = h.uniq('after-exec');
      await c.put(k, 'still-fine');
      assert.equal(await c.get(k), 'still-fine');
    });

    test('admin: cacheNames, createCache, getOrCreateCache, removeCache', T, async () => {
      const tag = version.replace('.', '');
      const name = `js-admin-${tag}`;
      const name2 = `js-admin-tmpl-${tag}`;
      const configured = ['default', 'work', 'sessions', 'clientSessions', 'offlineSessions',
        'offlineClientSessions', 'loginFailures', 'actionTokens', 'authenticationSessions'];
      const names0 = await c.admin.cacheNames();
      assert.ok(Array.isArray(names0), `cacheNames gives an array, got ${JSON.stringify(names0)}`);
      for (const n of configured) assert.ok(names0.includes(n), `cacheNames lacks ${n}`);
      assert.ok(!names0.includes(name));
      try {
        await c.admin.createCache(name, '{"local-cache":{}}');
        assert.ok((await c.admin.cacheNames()).includes(name));
        const e = await rejection(c.admin.createCache(name, '{"local-cache":{}}'));
        assert.match(errorText(e), /already exists/, 'creating an existing cache fails');
        const nc = h.bounded(await h.connect(version, name));
        try {
          await nc.put('k', 'in-new-cache');
          assert.equal(await nc.get('k'), 'in-new-cache');
          assert.equal(await c.get('k'), undefined, 'the new cache is separate from default');
          await c.admin.getOrCreateCache(name, '{"local-cache":{}}');
          assert.equal(await nc.get('k'), 'in-new-cache', 'getOrCreateCache keeps an existing cache');
        } finally { await h.disconnect(nc); }
        await c.admin.getOrCreateCache(name2, undefined, {template: 'org.infinispan.LOCAL'});
        assert.ok((await c.admin.cacheNames()).includes(name2));
      } finally {
        for (const n of [name, name2]) {
          try { await c.admin.removeCache(n); } catch (e) { /* asserted below */ }
        }
      }
      const names1 = await c.admin.cacheNames();
      assert.ok(!names1.includes(name) && !names1.includes(name2), 'removeCache removes');
      const gone = await rejection(h.connect(version, name));
      assert.equal(errorText(gone),
        `org.infinispan.server.hotrod.CacheNotFoundException: Cache with name '${name}' not found amongst the configured caches`);
    });

    test('topology: the single member is the dialled address and owns every key', T, async () => {
      const topo = c.getTopologyInfo();
      assert.deepEqual(topo.getMembers(), [{host: h.HOST, port: h.PORT}]);
      for (let i = 0; i < 300; i++) {
        const owners = await topo.findOwners(`owner-probe-${i}-${'é'.repeat(i % 5)}`);
        assert.deepEqual(owners, [{host: h.HOST, port: h.PORT}], `owners of key ${i}`);
      }
      // A client that does not want topology updates (intelligence 1) gets none.
      const basic = await h.connect(version, 'default', {topologyUpdates: false});
      try {
        assert.equal(basic.getTopologyInfo().getTopologyId(), 0);
        await h.withTimeout(basic.put('basic-intelligence', 'ok'), h.OP_TIMEOUT_MS, 'put');
        assert.equal(await c.get('basic-intelligence'), 'ok');
      } finally { await h.disconnect(basic); }
    });

    // A standalone Infinispan with local caches sends no topology, so the client keeps id 0 (the
    // js-client's own spec/infinispan_local_spec.js expects 0). Ironrod deliberately announces a
    // one-node topology with id 1, so that hash-aware clients, which start at 0 (JS) or -1 (Java),
    // receive the segment table: protocol-spec/compatibility.md C13.
    test('topology id is 1: the one-node topology reached the client', T, async () => {
      assert.equal(c.getTopologyInfo().getTopologyId(), 1);
    });

    test('concurrent clients: replaceWithVersion is atomic', T, async () => {
      const k = h.uniq('cas');
      await c.put(k, '0');
      const clients = [];
      try {
        for (let i = 0; i < 4; i++) clients.push(h.bounded(await h.connect(version)));
        const perClient = 15;
        let conflicts = 0;
        await Promise.all(clients.map(async (cc) => {
          for (let done = 0; done < perClient;) {
            const m = await cc.getWithMetadata(k);
            if (await cc.replaceWithVersion(k, String(Number(m.value) + 1), m.version)) done++;
            else conflicts++;
          }
        }));
        assert.equal(await c.get(k), String(4 * perClient), `lost updates (conflicts seen: ${conflicts})`);
      } finally {
        for (const cc of clients) await h.disconnect(cc);
      }
    });

    test('pipelining: 1000 puts in flight, then 1000 gets', T, async () => {
      const p = h.uniq('pipe');
      const N = 1000;
      const puts = [];
      for (let i = 0; i < N; i++) puts.push(c.put(`${p}-${i}`, `value-${i}-${'z'.repeat(i % 37)}`));
      const putResults = await Promise.all(puts);
      assert.ok(putResults.every((r) => r === undefined));
      const gets = [];
      for (let i = 0; i < N; i++) gets.push(c.get(`${p}-${i}`));
      const values = await Promise.all(gets);
      for (let i = 0; i < N; i++) assert.equal(values[i], `value-${i}-${'z'.repeat(i % 37)}`, `key ${i}`);
      assert.equal(await c.size(), N);
      // Mixed operations in flight together, replies matched by message id.
      const mixed = [];
      for (let i = 0; i < 200; i++) {
        // Disjoint keys, so the result does not depend on the order the server runs them in.
        mixed.push(c.containsKey(`${p}-${200 + i}`));
        mixed.push(c.remove(`${p}-${i}`));
        mixed.push(c.get(`${p}-${400 + i}`));
        mixed.push(c.putIfAbsent(`${p}-${N + i}`, 'new'));
      }
      const r = await Promise.all(mixed);
      for (let i = 0; i < 200; i++) {
        const v = `value-${400 + i}-${'z'.repeat((400 + i) % 37)}`;
        assert.deepEqual(r.slice(4 * i, 4 * i + 4), [true, true, v, true], `mixed batch ${i}`);
      }
      assert.equal(await c.size(), N);
      // Error replies in the middle of a pipeline do not disturb the replies around them.
      const withErrors = [];
      for (let i = 0; i < 50; i++) {
        withErrors.push(c.put(`${p}-e-${i}`, `e${i}`));
        withErrors.push(c.execute(`no-such-task-${i}`).then(() => 'resolved', (e) => `rejected: ${e}`));
        withErrors.push(c.get(`${p}-e-${i}`));
      }
      const re = await Promise.all(withErrors);
      for (let i = 0; i < 50; i++) {
        assert.equal(re[3 * i + 1], `rejected: java.lang.IllegalArgumentException: ISPN027002: Unknown task 'no-such-task-${i}'`);
        assert.equal(re[3 * i + 2], `e${i}`);
      }
    });

    test('unicode and binary-ish strings round-trip in keys and values', T, async () => {
      const samples = [
        'ключ-☃', 'värde-😀', '日本語のテキスト', 'ﷺ עברית العربية', '👨‍👩‍👧‍👦 family ZWJ',
        'e\u0301 combining', '\u0000\u0001\u0002\u0003\u001f', 'tab\tnl\ncr\r"quote\'\\',
        Array.from({length: 256}, (_, i) => String.fromCharCode(i)).join(''),
        '\uFFFD\uFEFF\u200B', '😀'.repeat(300), '\u{10FFFF}\u{1F600}',
      ];
      const p = h.uniq('uni');
      for (let i = 0; i < samples.length; i++) {
        const k = `${p}-${samples[i]}`;
        await c.put(k, samples[i]);
        assert.equal(await c.get(k), samples[i], `sample ${i}`);
        assert.equal(await c.containsKey(k), true);
        assert.equal((await c.getWithMetadata(k)).value, samples[i]);
      }
      const got = await c.getAll(samples.map((s) => `${p}-${s}`));
      assert.equal(got.length, samples.length);
      for (const e of got) assert.equal(e.key, `${p}-${e.value}`);
      // A key that only differs by normalisation is a different key.
      await c.put('\u00e9', 'precomposed');
      await c.put('e\u0301', 'decomposed');
      assert.equal(await c.get('\u00e9'), 'precomposed');
      assert.equal(await c.get('e\u0301'), 'decomposed');
    });

    test('large values (1 MB)', T, async () => {
      const k = h.uniq('large');
      const ascii = 'x'.repeat(1 << 20);
      let multi = '';
      for (let i = 0; multi.length < (1 << 19); i++) multi += String.fromCharCode(0x400 + (i % 256));
      await c.put(k, ascii);
      assert.equal(await c.get(k), ascii);
      assert.equal(await c.containsKey(k), true);
      if (vnum(version) < 40) {
        const prev = await c.put(k, multi, {previous: true});
        assert.equal(prevValue(version, prev), ascii);
      } else {
        // From 4.0 the previous value comes with metadata, and the client's decoder for that
        // (CLIENT_BUG_META_PARTIAL_READ, see the skipped test below) breaks on a reply split over
        // several socket reads. So no {previous: true} on a 1 MB value here.
        await c.put(k, multi);
      }
      assert.equal(await c.get(k), multi, '512 Ki two-byte characters (1 MB of UTF-8)');
      await c.put(`${k}-2`, ascii);
      const got = await c.getAll([k, `${k}-2`]);
      assert.equal(got.length, 2);
      for (const e of got) assert.equal(e.value, e.key === k ? multi : ascii);
      // A large key too.
      const bigKey = 'K'.repeat(64 * 1024);
      await c.put(bigKey, 'small');
      assert.equal(await c.get(bigKey), 'small');
      assert.equal(await c.remove(bigKey), true);
    });

    // CLIENT_BUG_META_PARTIAL_READ (client, not server): decodeWithMeta and, at 4.0+,
    // decodePrevWithMeta in node_modules/infinispan/lib/protocols.js never check that the value was
    // fully read (decodePairActions does: `values.length < 2`). When a reply spans several socket
    // reads — always the case for 1 MB — the client resolves getWithMetadata with value undefined,
    // trims the buffer in the middle of the value and then parses value bytes as frames, so the
    // connection is lost. A raw socket shows Ironrod's reply is right: `a1 id 1c 00 00 03 <version>
    // 80 80 40 <1048576 bytes>`, 1048593 bytes in all. The same happens with real Infinispan.
    test('getWithMetadata of a 1 MB value', {skip: 'client bug CLIENT_BUG_META_PARTIAL_READ: the ' +
      'client decodes a partially received META reply as complete (not a server issue)'}, async () => {
      const k = h.uniq('large-meta');
      await c.put(k, 'x'.repeat(1 << 20));
      assert.equal((await c.getWithMetadata(k)).value.length, 1 << 20);
    });

    // Media types travel in the request header from Hot Rod 2.8 on; the client's 2.2 and 2.5
    // protocol objects (NoMediaTypesMixin) cannot announce application/json, so this is 2.9+ only.
    test('application/json data format: objects round-trip as keys and values', {...T,
      skip: vnum(version) < 29 ? 'the client sends no media types below 2.9' : false}, async () => {
      const j = h.bounded(await h.connect(version, 'default',
        {dataFormat: {keyType: 'application/json', valueType: 'application/json'}}));
      try {
        const key = {id: 42, kind: 'json-key', tags: ['a', 'ü']};
        const value = {name: 'Ω', nested: {n: [1, 2.5, null, true]}, empty: {}};
        assert.equal(await j.put(key, value), undefined);
        assert.deepEqual(await j.get(key), value);
        assert.equal(await j.containsKey(key), true);
        assert.deepEqual((await j.getWithMetadata(key)).value, value);
        assert.deepEqual(await j.getAll([key, {id: 43}]), [{key, value}]);
        if (vnum(version) >= 25) {
          const it = await j.iterator(5);
          const e = await it.next();
          await it.close();
          assert.deepEqual([e.key, e.value], [key, value]);
        }
        assert.equal(await j.remove(key), true);
        assert.equal(await j.get(key), undefined);
      } finally { await h.disconnect(j); }
    });

    test('many caches: data is isolated per cache name', T, async () => {
      const names = ['work', 'sessions', 'clientSessions', 'offlineSessions', 'offlineClientSessions',
        'loginFailures', 'actionTokens', 'authenticationSessions'];
      const clients = [];
      try {
        for (const n of names) {
          const cc = h.bounded(await h.connect(version, n));
          assert.equal(cc.getProtocolVersion(), h.expectedVersion(version));
          clients.push(cc);
        }
        const k = h.uniq('iso');
        await c.put(k, 'in-default');
        await Promise.all(clients.map((cc, i) => cc.clear()));
        await Promise.all(clients.map((cc, i) => cc.put(k, `in-${names[i]}`)));
        await Promise.all(clients.map((cc, i) => cc.put(`${k}-only-${i}`, 'x')));
        for (let i = 0; i < names.length; i++) {
          assert.equal(await clients[i].get(k), `in-${names[i]}`, names[i]);
          assert.equal(await clients[i].size(), 2, `size of ${names[i]}`);
          assert.equal(await clients[i].containsKey(`${k}-only-${(i + 1) % names.length}`), false);
        }
        assert.equal(await c.get(k), 'in-default');
        assert.equal(await c.size(), 1);
        // Clearing one cache leaves the others alone.
        await clients[0].clear();
        assert.equal(await clients[0].size(), 0);
        assert.equal(await clients[1].get(k), `in-${names[1]}`);
        assert.equal(await c.get(k), 'in-default');
        for (const cc of clients) await cc.clear();
      } finally {
        for (const cc of clients) await h.disconnect(cc);
      }
    });
  });
}
