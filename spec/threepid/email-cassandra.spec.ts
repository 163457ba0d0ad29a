// Email on accounts with storage.backend: cassandra (a real node from scripts/cassandra.sh): a
// validation session begun before a restart is completed by the next process on the same
// keyspace (as another worker of a cluster would), and the address then registers, lists and
// logs in.

import { assert } from '../helpers/assert.js';
import { cassandraClient, dropKeyspace, freshKeyspace, startCassandra } from '../helpers/cassandra.js';
import { ok, PASSWORD, V3 } from '../helpers/fixtures.js';
import { freePort } from '../helpers/ports.js';
import { SmtpSink, linkIn } from '../helpers/smtp-sink.js';
import { Api, startTestServer, type TestServer } from '../helpers/server.js';

describe('threepid: email sessions on Cassandra, across processes', function () {
  this.timeout(120_000);
  const keyspace = freshKeyspace('threepid');
  let addr = '';
  let sink: SmtpSink;
  let srv: TestServer | null = null;
  let port = 0;
  let dataDir: string | undefined;

  const start = async () => {
    srv = await startTestServer(
      {
        storage: { backend: 'cassandra', cassandra: { contact_points: [addr], keyspace } },
        listeners: { client: { host: '127.0.0.1', port } },
        public_baseurl: `http://127.0.0.1:${port}/`,
        email: { enabled: true, smtp_host: '127.0.0.1', smtp_port: sink.port, require_transport_security: false },
      },
      dataDir,
    );
    dataDir = srv.dataDir;
    return srv;
  };

  before(async function () {
    this.timeout(600_000);
    addr = await startCassandra();
    sink = await SmtpSink.start();
    port = await freePort();
    await start();
  });

  after(async function () {
    this.timeout(180_000);
    await srv?.stop();
    await sink?.stop();
    const admin = await cassandraClient(addr);
    await dropKeyspace(admin, keyspace);
    await admin.shutdown();
  });

  it('a session begun by one process is validated and used by the next; the address logs in', async function () {
    let anon = new Api(srv!.url);
    const client_secret = 'cass-secret';
    const first = await ok(anon.post(`${V3}/register/email/requestToken`, { client_secret, email: 'Cass@Example.org', send_attempt: 1 }), 'requestToken');
    const link = linkIn(await sink.next('cass@example.org'));

    await srv!.stop();
    await start();
    anon = new Api(srv!.url);

    // The same client_secret and send_attempt on the new process: the same session, no mail.
    const again = await ok(anon.post(`${V3}/register/email/requestToken`, { client_secret, email: 'cass@example.org', send_attempt: 1 }), 'repeat');
    assert.equal(again.sid, first.sid);
    assert.equal((await fetch(link)).status, 200);

    const challenge = await anon.post(`${V3}/register`, { username: 'cass', password: PASSWORD });
    const reg = await ok(
      anon.post(`${V3}/register`, { username: 'cass', password: PASSWORD, auth: { type: 'm.login.email.identity', session: challenge.body.session, threepid_creds: { sid: first.sid, client_secret } } }),
      'register',
    );
    const u = new Api(srv!.url, reg.access_token);
    assert.deepEqual((await ok(u.get(`${V3}/account/3pid`), 'list')).threepids.map((t: { address: string }) => t.address), ['cass@example.org']);
    const login = await ok(anon.post(`${V3}/login`, { type: 'm.login.password', identifier: { type: 'm.id.thirdparty', medium: 'email', address: 'CASS@example.org' }, password: PASSWORD }), 'login');
    assert.equal(login.user_id, reg.user_id);
    assert.equal(sink.mails.length, 1, 'one mail in all');
  });
});
