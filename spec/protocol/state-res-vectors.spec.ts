// Every case in ../shared/vectors/state-res/, run as its README says: batch cases PDU by PDU,
// batch by batch and all at once (all three must give the expected state); MSC4297 state-map
// cases resolving two state maps with the v11 PDUs (state res v2.0) and the v12 PDUs (v2.1).
import { assert } from '../helpers/assert.js';
import { resolveState } from '../../src/protocol/state-res/index.js';
import {
  type ExpectedEntry,
  MemorySource,
  loadBatch,
  loadJson,
  render,
  resolveAllAtOnce,
  resolveBatchByBatch,
  resolvePduByPdu,
  roomVersionOf,
  stateMapFromIds,
  type VectorPdu,
} from './state-res-harness.js';

export const BATCH_CASES: ReadonlyArray<[name: string, batches: string[]]> = [
  ['minimal_private_chat', ['bootstrap-private-chat']],
  ['minimal_public_chat', ['bootstrap-public-chat']],
  ['origin_server_ts_tiebreak', ['bootstrap-private-chat', 'origin-server-ts-tiebreak']],
  ['ban_vs_power_levels', ['bootstrap-public-chat', 'ban-vs-power-levels-alice', 'ban-vs-power-levels-bob']],
  ['topic_vs_power_levels', ['bootstrap-public-chat', 'topic-vs-power-levels-alice', 'topic-vs-power-levels-bob']],
  ['power_levels_admin_vs_mod', ['bootstrap-public-chat', 'power-levels-admin-vs-mod-alice', 'power-levels-admin-vs-mod-bob']],
  ['topic_vs_ban', ['bootstrap-public-chat', 'topic-vs-ban-common', 'topic-vs-ban-alice', 'topic-vs-ban-bob']],
  ['join_rules_vs_join', ['bootstrap-public-chat', 'join-rules-vs-join-common', 'join-rules-vs-join-alice', 'join-rules-vs-join-ella']],
  ['concurrent_joins', ['bootstrap-public-chat', 'concurrent-joins-charlie', 'concurrent-joins-ella']],
];

export const STATE_MAP_CASES: ReadonlyArray<[name: string, maps: string[], pdus: string]> = [
  ['msc4297_problem_a_state_res_v2_0', ['MSC4297-problem-A/state-bob', 'MSC4297-problem-A/state-charlie'], 'MSC4297-problem-A/pdus-v11'],
  ['msc4297_problem_a_state_res_v2_1', ['MSC4297-problem-A/state-bob', 'MSC4297-problem-A/state-charlie'], 'MSC4297-problem-A/pdus-v12'],
  ['msc4297_problem_b_state_res_v2_0', ['MSC4297-problem-B/state-eve', 'MSC4297-problem-B/state-zara'], 'MSC4297-problem-B/pdus-v11'],
  ['msc4297_problem_b_state_res_v2_1', ['MSC4297-problem-B/state-eve', 'MSC4297-problem-B/state-zara'], 'MSC4297-problem-B/pdus-v12'],
];

export function expected(name: string): ExpectedEntry[] {
  return loadJson<ExpectedEntry[]>(`expected/${name}.json`);
}

describe('protocol/state-res: shared vectors, batch cases', () => {
  for (const [name, files] of BATCH_CASES) {
    describe(name, () => {
      const batches = files.map(loadBatch);
      const all = batches.flat();
      const version = roomVersionOf(all);
      const source = new MemorySource(all);
      const want = expected(name);

      it('has a non-trivial expectation (sanity of the fixture loading)', () => {
        assert.ok(want.length >= 5, `expected state of ${name} has ${want.length} entries`);
        assert.ok(all.length >= 6);
      });

      it('PDU by PDU', () => {
        const { state } = resolvePduByPdu(version, all);
        assert.deepEqual(render(state, source), want);
      });

      it('batch by batch', () => {
        assert.deepEqual(render(resolveBatchByBatch(version, batches), source), want);
      });

      it('all at once', () => {
        assert.deepEqual(render(resolveAllAtOnce(version, batches), source), want);
      });
    });
  }
});

describe('protocol/state-res: shared vectors, MSC4297 state maps', () => {
  for (const [name, mapFiles, pduFile] of STATE_MAP_CASES) {
    it(name, () => {
      const pdus = loadJson<VectorPdu[]>(`fixtures/${pduFile}.json`);
      const version = roomVersionOf(pdus);
      assert.equal(version, pduFile.endsWith('v12') ? '12' : '11');
      const source = new MemorySource(pdus);
      const maps = mapFiles.map((f) => stateMapFromIds(loadJson<string[]>(`fixtures/${f}.json`), source));
      const resolved = resolveState(version, maps, source);
      assert.deepEqual(render(resolved, source), expected(name));
    });
  }

  it('v2.0 and v2.1 really differ on both problems (the cases are not vacuous)', () => {
    for (const problem of ['a', 'b']) {
      const v20 = expected(`msc4297_problem_${problem}_state_res_v2_0`).map((e) => e.event_id);
      const v21 = expected(`msc4297_problem_${problem}_state_res_v2_1`).map((e) => e.event_id);
      assert.notDeepEqual(v20, v21);
    }
  });
});
