'use strict';
// Client listeners: created, modified, removed and expired events pushed by the server, the
// current state on registration, removal of a listener, and no event lost under a burst.
// Versions 2.2 and 2.5 are left out: the npm client appends an interests byte the grammar of those
// versions does not have (protocol-spec/events.md §1).

const {describe, test, before, after, beforeEach} = require('node:test');
const h = require('../lib/harness');
const {assert, sleep, uniq, verNum} = h;

const LISTENER_VERSIONS = h.VERSIONS.filter((v) => v !== '2.2' && v !== '2.5');

async function waitFor(cond, what, ms = 5000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

for (const version of LISTENER_VERSIONS) {
  describe(`Hot Rod ${version}: client listeners`, {concurrency: 1, timeout: 120000}, () => {
    let listening;
    let writer;
    const T = {timeout: h.TEST_TIMEOUT_MS};

    before(async () => {
      listening = h.bounded(await h.connect(version, 'default'));
      writer = h.bounded(await h.connect(version, 'default'));
    });
    // includeState sends the whole cache: keep it to this file's entries.
    beforeEach(async () => { await writer.clear(); });
    after(async () => {
      await h.disconnect(listening);
      await h.disconnect(writer);
    });

    test('create, modify, remove and expiry events carry key and version', T, async () => {
      const p = uniq(`l${version}`);
      const seen = [];
      const mine = (k) => typeof k === 'string' && k.startsWith(p);
      const lid = await listening.addListener('create', (k, v) => { if (mine(k)) seen.push(['create', k, v]); });
      await listening.addListener('modify', (k, v) => { if (mine(k)) seen.push(['modify', k, v]); }, {listenerId: lid});
      await listening.addListener('remove', (k) => { if (mine(k)) seen.push(['remove', k]); }, {listenerId: lid});
      await listening.addListener('expiry', (k) => { if (mine(k)) seen.push(['expiry', k]); }, {listenerId: lid});

      const k = `${p}-k`;
      await writer.put(k, 'a');
      const v1 = (await writer.getWithMetadata(k)).version;
      await writer.put(k, 'b');
      const v2 = (await writer.getWithMetadata(k)).version;
      await writer.remove(k);
      await waitFor(() => seen.length >= 3, 'create, modify and remove events');
      assert.deepEqual(seen.map((e) => [e[0], e[1]]), [['create', k], ['modify', k], ['remove', k]]);
      assert.equal(verNum(seen[0][2]), verNum(v1), 'created event carries the entry version');
      assert.equal(verNum(seen[1][2]), verNum(v2), 'modified event carries the new version');

      const e = `${p}-short`;
      await writer.put(e, 'x', {lifespan: '500ms'});
      await sleep(800);
      assert.equal(await writer.get(e), undefined);
      await waitFor(() => seen.some((x) => x[0] === 'expiry' && x[1] === e), 'expiry event');
      await listening.removeListener(lid);
    });

    test('includeState sends current entries, then live events; removeListener stops them', T, async () => {
      const p = uniq(`s${version}`);
      const keys = [`${p}-1`, `${p}-2`, `${p}-3`];
      for (const k of keys) await writer.put(k, 'v');
      const created = [];
      const lid = await listening.addListener('create', (k) => {
        if (typeof k === 'string' && k.startsWith(p)) created.push(k);
      }, {includeState: true});
      await waitFor(() => created.length >= 3, 'the current state');
      assert.deepEqual([...created].sort(), keys);
      await writer.put(`${p}-4`, 'v');
      await waitFor(() => created.length >= 4, 'a live event after the state');
      assert.equal(created[3], `${p}-4`);

      assert.equal(await listening.removeListener(lid), true);
      await writer.put(`${p}-5`, 'v');
      await sleep(300);
      assert.equal(created.length, 4, 'no event after removeListener');
    });

    test('1000 puts without waiting give exactly 1000 created events', T, async () => {
      const p = uniq(`b${version}`);
      const got = new Set();
      let count = 0;
      const lid = await listening.addListener('create', (k) => {
        if (typeof k === 'string' && k.startsWith(p)) { count++; got.add(k); }
      });
      const puts = [];
      for (let i = 0; i < 1000; i++) puts.push(writer.put(`${p}-${i}`, `v${i}`));
      await Promise.all(puts);
      await waitFor(() => count >= 1000, `1000 created events (have ${count})`, 15000);
      await sleep(200);
      assert.equal(count, 1000);
      assert.equal(got.size, 1000);
      await listening.removeListener(lid);
    });
  });
}
