// Every case in ../shared/vectors/state-res/, run as its README says: batch cases PDU by PDU,
// batch by batch and all at once (all three must give the expected state); MSC4297 state-map
// cases resolving two state maps with the v11 PDUs (state res v2.0) and the v12 PDUs (v2.1).
import { assert } from '../helpers/assert.js';
import { resolveState } from '../../src/protocol/state-res/index.js';
import {
  BATCH_CASES,
  MemorySource,
  STATE_MAP_CASES,
  expected,
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
