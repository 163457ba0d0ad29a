// The seam between room input and state resolution. Room input only ever resolves through this
// type, so the composition root (src/app.ts) chooses the algorithm (src/protocol/state-res) and
// tests can inject their own.
//
// Contract (that of src/protocol/state-res's resolveState): synchronous and pure given the
// source; events the source does not know are left out rather than failing the resolution; the
// result does not depend on the order of `stateSets`.

import type { resolveState } from '../protocol/state-res/index.js';

export type { StateMap, StateResSource as StateResolutionSource } from '../protocol/state-res/index.js';

export type ResolveState = typeof resolveState;
