// matrix-js-sdk 43 (Element's library) against Hearth's media repository: uploadContent, the
// media config, an avatar set from an upload, an m.image message, and the authenticated download
// and thumbnail URLs mxcUrlToHttp builds (useAuthentication), fetched with the access token in
// the Authorization header as Element does. No request the SDK makes may fail.

import { assert } from '../helpers/assert.js';
import type { MatrixClient } from 'matrix-js-sdk';
import { loadSdk, printSdkTrailOnFailure, RequestRecorder, sdkClient, stopClients, type Sdk } from '../helpers/js-sdk.js';
import { Api, startTestServer, type TestServer } from '../helpers/server.js';
import { dimensions, twoTonePng, solidJpeg } from '../media/helpers.js';

describe('matrix-js-sdk 43: media', function () {
  this.timeout(30000);
  let sdk: Sdk;
  let srv: TestServer;
  const rec = new RequestRecorder();
  const running: MatrixClient[] = [];
  let alice: MatrixClient;
  let bob: MatrixClient;
  let bobToken: string;

  before(async function () {
    sdk = await loadSdk();
    srv = await startTestServer();
    const api = new Api(srv.url);
    const a = await api.register('alice');
    const b = await api.register('bob');
    bobToken = b.token!;
    alice = sdkClient(sdk, srv.url, rec, 'alice', { userId: a.userId, accessToken: a.token!, deviceId: a.deviceId });
    bob = sdkClient(sdk, srv.url, rec, 'bob', { userId: b.userId, accessToken: b.token!, deviceId: b.deviceId });
    running.push(alice, bob);
  });
  afterEach(function () {
    printSdkTrailOnFailure(this, rec, 20, 20);
  });
  after(async function () {
    await stopClients(running, rec);
    await srv?.stop();
  });

  /** What Element does with an authenticated media URL: fetch with the token, use the bytes. */
  const authedFetch = async (url: string, token: string) => {
    const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, type: res.headers.get('content-type'), bytes: Buffer.from(await res.arrayBuffer()) };
  };

  it('reads the media config (authenticated endpoint)', async function () {
    const config = await alice.getMediaConfig(true);
    assert.equal(config['m.upload.size'], 52428800);
  });

  it('uploads an image, downloads it and a thumbnail through mxcUrlToHttp(useAuthentication)', async function () {
    const png = await twoTonePng(500, 250);
    const { content_uri: mxc } = await alice.uploadContent(new Blob([new Uint8Array(png)], { type: 'image/png' }), { name: 'photo.png', type: 'image/png' });
    assert.match(mxc, /^mxc:\/\/localhost\//);

    const downloadUrl = bob.mxcUrlToHttp(mxc, undefined, undefined, undefined, false, true, true);
    assert.ok(downloadUrl?.includes('/_matrix/client/v1/media/download/localhost/'), downloadUrl ?? 'null');
    const full = await authedFetch(downloadUrl!, bobToken);
    assert.equal(full.status, 200);
    assert.equal(full.type, 'image/png');
    assert.deepEqual(full.bytes, png);

    const thumbUrl = bob.mxcUrlToHttp(mxc, 96, 96, 'crop', false, true, true);
    assert.ok(thumbUrl?.includes('/_matrix/client/v1/media/thumbnail/localhost/'), thumbUrl ?? 'null');
    const thumb = await authedFetch(thumbUrl!, bobToken);
    assert.equal(thumb.status, 200);
    assert.deepEqual(await dimensions(thumb.bytes), { width: 96, height: 96, format: 'png', pages: 1 });
    const scaled = await authedFetch(bob.mxcUrlToHttp(mxc, 100, 100, 'scale', false, true, true)!, bobToken);
    assert.deepEqual(await dimensions(scaled.bytes), { width: 100, height: 50, format: 'png', pages: 1 });

    // Without the token the authenticated URL is refused.
    assert.equal((await fetch(downloadUrl!)).status, 401);
  });

  it('sets an avatar from an upload and sends an m.image that the other user can fetch', async function () {
    const jpg = await solidJpeg(64, 64, [200, 30, 30]);
    const { content_uri: avatar } = await alice.uploadContent(Buffer.from(jpg), { name: 'me.jpg', type: 'image/jpeg' });
    await alice.setAvatarUrl(avatar);
    const profile = await bob.getProfileInfo(alice.getUserId()!);
    assert.equal(profile.avatar_url, avatar);
    const avatarThumb = await authedFetch(bob.mxcUrlToHttp(profile.avatar_url!, 32, 32, 'crop', false, true, true)!, bobToken);
    assert.equal(avatarThumb.type, 'image/jpeg');
    assert.deepEqual(await dimensions(avatarThumb.bytes), { width: 32, height: 32, format: 'jpeg', pages: 1 });

    const { room_id: roomId } = await alice.createRoom({ invite: [bob.getUserId()!] });
    await bob.joinRoom(roomId);
    const png = await twoTonePng(80, 40);
    const { content_uri: image } = await alice.uploadContent(new Blob([new Uint8Array(png)], { type: 'image/png' }), { name: 'pic.png' });
    const { event_id: eventId } = await alice.sendMessage(roomId, { msgtype: 'm.image', body: 'pic.png', url: image, info: { mimetype: 'image/png', w: 80, h: 40, size: png.length } } as any);
    const ev = await bob.fetchRoomEvent(roomId, eventId);
    const url = (ev.content as { url: string }).url;
    const got = await authedFetch(bob.mxcUrlToHttp(url, undefined, undefined, undefined, false, true, true)!, bobToken);
    assert.deepEqual(got.bytes, png);
  });

  it('made no request that failed', function () {
    const failed = rec.requests.filter((r) => r.status >= 400 || r.status === 0);
    assert.deepEqual(failed.map((r) => `${r.method} ${r.path} ${r.status} ${r.errcode ?? ''}`), []);
    assert.ok(rec.requests.some((r) => r.method === 'POST' && r.path === '/_matrix/media/v3/upload' && r.status === 200), rec.describe(rec.requests));
  });
});
