// A real browser (Debian's chromium, driven by playwright-core) uploads an avatar and an image
// through Hearth's media endpoints from a page on another origin, the way Element does:
// POST /_matrix/media/v3/upload with the file, then authenticated fetches of the thumbnail and
// the download (Authorization header, CORS preflight) turned into blob: URLs for <img>. The
// page is spec/browser/media-page.html, served by the test. Screenshots go to the test's output
// directory (HEARTH_TEST_OUTPUT, default .tmp/test-output/) under browser-media/.
//
// Chromium comes from scripts/browser-setup.sh (apt-get install chromium, idempotent); where it
// cannot be installed the suite fails with that script's message rather than passing silently.

import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import sharp from 'sharp';
import { chromium, type Browser } from 'playwright-core';
import { assert } from '../helpers/assert.js';
import { REPO_ROOT } from '../helpers/child-server.js';
import { Api, startTestServer, type TestServer } from '../helpers/server.js';
import { twoTonePng } from '../media/helpers.js';

const OUTPUT = join(process.env.HEARTH_TEST_OUTPUT || join(REPO_ROOT, '.tmp', 'test-output'), 'browser-media');

describe('browser: a web client uploads and shows media (chromium)', function () {
  this.timeout(90000);
  let srv: TestServer;
  let site: Server;
  let siteUrl: string;
  let browser: Browser;

  before(async function () {
    const executablePath = execFileSync(join(REPO_ROOT, 'scripts', 'browser-setup.sh'), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').pop()!;
    mkdirSync(OUTPUT, { recursive: true });
    srv = await startTestServer();
    const page = readFileSync(join(REPO_ROOT, 'spec', 'browser', 'media-page.html'));
    site = createServer((_req, res) => {
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.end(page);
    });
    await new Promise<void>((r) => site.listen(0, '127.0.0.1', r));
    siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}/`;
    browser = await chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  });
  after(async function () {
    await browser?.close();
    site?.closeAllConnections();
    if (site) await new Promise((r) => site.close(r));
    await srv?.stop();
  });

  it('uploads an avatar and an image, and displays both from authenticated media', async function () {
    const api = new Api(srv.url);
    const alice = await api.register('alice');
    const room = await alice.post('/_matrix/client/v3/createRoom', { name: 'pictures' });
    // A 256x256 avatar (green with a yellow square) and a 400x200 image (red | blue).
    const avatarPng = await sharp({ create: { width: 256, height: 256, channels: 3, background: { r: 0, g: 150, b: 60 } } })
      .composite([{ input: await sharp({ create: { width: 128, height: 128, channels: 3, background: { r: 250, g: 220, b: 0 } } }).png().toBuffer(), left: 64, top: 64 }])
      .png()
      .toBuffer();
    const imagePng = await twoTonePng(400, 200);

    const page = await browser.newPage({ viewport: { width: 480, height: 520 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    // Origin of the page != origin of the homeserver: CORS applies, as for app.element.io.
    await page.goto(`${siteUrl}#hs=${encodeURIComponent(srv.url)}&token=${encodeURIComponent(alice.token!)}&room=${encodeURIComponent(room.body.room_id)}`);
    await page.setInputFiles('#avatarFile', { name: 'avatar.png', mimeType: 'image/png', buffer: avatarPng });
    await page.setInputFiles('#imageFile', { name: 'holiday.png', mimeType: 'image/png', buffer: imagePng });
    await page.screenshot({ path: join(OUTPUT, '1-before-upload.png') });
    await page.click('#go');
    await page.waitForFunction(() => document.body.dataset.done !== undefined, undefined, { timeout: 30000 });
    await page.screenshot({ path: join(OUTPUT, '2-after-upload.png') });
    const state = await page.evaluate(() => {
      const img = (id: string) => {
        const el = document.getElementById(id) as HTMLImageElement;
        return { src: el.src.slice(0, 5), w: el.naturalWidth, h: el.naturalHeight, complete: el.complete };
      };
      return { done: document.body.dataset.done, log: document.getElementById('log')!.textContent, avatar: img('avatar'), image: img('image') };
    });
    assert.equal(state.done, 'yes', state.log ?? '');
    assert.deepEqual(errors, []);
    // The avatar is the server's 64x64 crop thumbnail, the image the full 400x200 download.
    assert.deepEqual(state.avatar, { src: 'blob:', w: 64, h: 64, complete: true });
    assert.deepEqual(state.image, { src: 'blob:', w: 400, h: 200, complete: true });

    // What the browser rendered: the image element's pixels are red on the left, blue on the right.
    const shot = await page.locator('#image').screenshot({ path: join(OUTPUT, '3-image-element.png') });
    const { data, info } = await sharp(shot).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const px = (x: number, y: number) => [...data.subarray((y * info.width + x) * 3, (y * info.width + x) * 3 + 3)];
    const mid = Math.floor(info.height / 2);
    assert.deepEqual(px(Math.floor(info.width / 4), mid), [255, 0, 0]);
    assert.deepEqual(px(Math.floor((info.width * 3) / 4), mid), [0, 0, 255]);
    const avatarShot = await page.locator('#avatar').screenshot({ path: join(OUTPUT, '4-avatar-element.png') });
    const a = await sharp(avatarShot).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const centre = [...a.data.subarray(((a.info.height >> 1) * a.info.width + (a.info.width >> 1)) * 3, ((a.info.height >> 1) * a.info.width + (a.info.width >> 1)) * 3 + 3)];
    assert.ok(centre[0] > 200 && centre[1] > 180 && centre[2] < 60, `avatar centre is yellow: ${centre}`);

    // And the server holds what the page sent.
    const profile = await alice.get(`/_matrix/client/v3/profile/${encodeURIComponent(alice.userId)}`);
    assert.match(profile.body.avatar_url, /^mxc:\/\/localhost\//);
    await page.close();
  });
});
