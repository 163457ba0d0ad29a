// Guards the "every vector is exercised" promise: a new vector file fails here until a spec
// handles it, and each handled file must still have the shape its spec iterates over.
import { assert } from '../helpers/assert.js';
import path from 'node:path';
import { loadVector, vectorFiles, vectorsDir } from './vectors.js';

const HANDLED: Record<string, { spec: string; cases: (v: any) => unknown[] }> = {
  'spec-signing-key.json': { spec: 'crypto.spec', cases: (v) => [v.seed_base64] },
  'spec-canonical-json.json': { spec: 'canonical-json.spec', cases: (v) => [...v.cases, ...v.derived_cases.cases] },
  'spec-json-signing.json': { spec: 'crypto.spec', cases: (v) => v.cases },
  'spec-event-signing.json': { spec: 'events.spec', cases: (v) => v.cases },
  'synapse-event-signing.json': { spec: 'events.spec', cases: (v) => v.cases },
  'gmsl-event-id.json': { spec: 'events.spec', cases: (v) => v.cases },
  'gmsl-redaction.json': { spec: 'redaction.spec', cases: (v) => v.cases },
  'room-v11-chain.json': { spec: 'events.spec', cases: (v) => v.events },
  'x-matrix-request-example.json': { spec: 'x-matrix.spec', cases: (v) => v.cases },
};

describe('protocol/vectors', () => {
  it('are found through the repo-relative path when it exists', () => {
    const relative = path.resolve(process.cwd(), '../shared/vectors');
    assert.ok(vectorsDir() === relative || vectorsDir() === '/work/shared/vectors');
  });

  it('every vector file has a spec that exercises it', () => {
    const unhandled = vectorFiles().filter((f) => !(f in HANDLED));
    assert.deepEqual(unhandled, []);
  });

  for (const [file, { spec, cases }] of Object.entries(HANDLED)) {
    it(`${file} is present and non-empty (exercised in ${spec})`, () => {
      const list = cases(loadVector(file));
      assert.ok(list.length > 0);
      for (const c of list) assert.ok(c !== undefined && c !== null);
    });
  }
});
