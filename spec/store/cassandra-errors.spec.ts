// Which cassandra-driver errors count as "the store is unavailable right now" (a retryable 503
// at the API), and which stay what they are. Built from the driver's own error classes.

import { assert } from '../helpers/assert.js';
import cassandra from 'cassandra-driver';
import { asUnavailable } from '../../src/store/cassandra/index.js';
import { StoreConflictError, StoreUnavailableError } from '../../src/store/types.js';

describe('Cassandra errors: transient ones become StoreUnavailableError', function () {
  // Schema changes (a fresh keyspace's migrations), truncations and LWTs take seconds each on a
  // loaded machine; mocha's 20 s default failed them in a CI rehearsal with the machine saturated.
  this.timeout(90_000);
  const codes = cassandra.types.responseErrorCodes;

  it('timeouts, unreachable nodes and overload are unavailable, with the driver error as cause', function () {
    const timedOut = new cassandra.errors.OperationTimedOutError('The host 127.0.0.1:19042 did not reply before timeout 12000 ms');
    const e = asUnavailable(timedOut);
    assert.ok(e instanceof StoreUnavailableError);
    assert.equal(e.cause, timedOut);
    assert.ok(asUnavailable(new cassandra.errors.NoHostAvailableError({})) instanceof StoreUnavailableError);
    for (const code of [codes.writeTimeout, codes.readTimeout, codes.unavailableException, codes.overloaded]) {
      assert.ok(asUnavailable(new cassandra.errors.ResponseError(code, 'node said no')) instanceof StoreUnavailableError, `code ${code}`);
    }
  });

  it("request errors and the store's own errors are left as they are", function () {
    assert.equal(asUnavailable(new cassandra.errors.ResponseError(codes.syntaxError, 'bad CQL')), null);
    assert.equal(asUnavailable(new cassandra.errors.ResponseError(codes.invalid, 'bad bind')), null);
    assert.equal(asUnavailable(new StoreConflictError('taken')), null);
    assert.equal(asUnavailable(new TypeError('bug')), null);
  });
});
