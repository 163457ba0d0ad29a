// Registration, login, logout, password, deactivation, devices, and Synapse's shared-secret
// admin registration API.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { MatrixError } from '../../errors.js';
import { body, uiaRequest, type Ctx } from '../middleware.js';
import { parse, param, type ApiServices, type ClientRoutes, valid } from '../routing.js';
import type { JsonObject } from '../../protocol/types.js';
import { CAS_IDP_ID } from './sso.js';

const identifierSchema = z.object({ type: z.string(), user: z.string().max(255).optional() }).passthrough();

const loginSchema = z
  .object({
    type: z.string(),
    identifier: identifierSchema.optional(),
    user: z.string().max(255).optional(),
    password: z.string().max(1024).optional(),
    device_id: z.string().min(1).max(255).optional(),
    initial_device_display_name: z.string().max(255).optional(),
    refresh_token: z.boolean().optional(),
  })
  .passthrough();

const registerSchema = z
  .object({
    username: z.string().max(255).optional(),
    password: z.string().max(1024).optional(),
    device_id: z.string().min(1).max(255).optional(),
    initial_device_display_name: z.string().max(255).optional(),
    inhibit_login: z.boolean().optional(),
    guest_access_token: z.string().max(1024).optional(),
    auth: z.record(z.string(), z.unknown()).optional(),
    // m.login.application_service: an application service registering a user in its namespace.
    type: z.string().max(255).optional(),
  })
  .passthrough();

const passwordSchema = z
  .object({
    new_password: z.string().min(1).max(1024),
    logout_devices: z.boolean().optional(),
    auth: z.record(z.string(), z.unknown()).optional(),
  })
  .passthrough();

const deviceUpdateSchema = z.object({ display_name: z.string().max(255).optional() }).passthrough();
const deleteDevicesSchema = z.object({ devices: z.array(z.string().max(255)).max(1000) }).passthrough();

type AccountRouteDeps = Pick<ApiServices, 'accounts' | 'cas' | 'loginTokens' | 'recaptcha' | 'erasure' | 'limits' | 'publicBaseUrl' | 'registrar' | 'registration' | 'registrationNonces' | 'serverName' | 'appServices' | 'identity' | 'threepids'>;

export function accountRoutes(r: ClientRoutes, s: AccountRouteDeps): void {
  r.route('get', '/register/available', async (ctx) => {
    const username = String(ctx.query.username ?? '');
    await s.limits.registration.consume(`avail:${ctx.ip}`);
    await s.accounts.isAvailable(username);
    ctx.body = { available: true };
  });

  r.route('post', '/register', async (ctx) => {
    if (ctx.query.kind === 'guest') {
      if (!s.registration.allowGuests) throw new MatrixError('M_FORBIDDEN', 'Guest access is disabled');
      const req = parse(registerSchema, body(ctx));
      await s.limits.registration.consume(ctx.ip);
      ctx.body = await s.accounts.registerGuest(req.device_id, req.initial_device_display_name ?? null, ctx.ip || null);
      return;
    }
    if (ctx.query.kind !== undefined && ctx.query.kind !== 'user') throw new MatrixError('M_INVALID_PARAM', 'kind must be user or guest');
    if (parse(registerSchema, body(ctx)).type === 'm.login.application_service') {
      ctx.body = await registerForAppService(s, ctx, parse(registerSchema, body(ctx)));
      return;
    }
    if (!s.registration.enabled) throw new MatrixError('M_FORBIDDEN', 'Registration is disabled');
    const req = parse(registerSchema, body(ctx));
    await s.limits.registration.consume(ctx.ip);
    ctx.body = await s.registrar.register(
      { ...req, auth: req.auth as JsonObject | undefined },
      uiaRequest(ctx),
      ctx.ip || null,
      async (stage, auth) => {
        if (stage === 'm.login.dummy') return true;
        if (stage === 'm.login.recaptcha' && s.recaptcha) {
          await s.recaptcha.verify(auth.response, ctx.ip || null);
          return true;
        }
        if (stage === 'm.login.registration_token') {
          if (!s.accounts.checkRegistrationToken(auth.token)) throw new MatrixError('M_FORBIDDEN', 'Invalid registration token');
          return true;
        }
        return false;
      },
    );
  });

  r.route(
    'get',
    '/register/m.login.registration_token/validity',
    async (ctx) => {
      await s.limits.registration.consume(`token:${ctx.ip}`);
      const token = ctx.query.token;
      if (typeof token !== 'string' || token === '') throw new MatrixError('M_MISSING_PARAM', 'token: required');
      if (!s.registration.enabled) throw new MatrixError('M_FORBIDDEN', 'Registration is disabled');
      ctx.body = { valid: s.accounts.checkRegistrationToken(token) };
    },
    ['v1'],
  );

  r.route('get', '/login', (ctx) => {
    const flows: JsonObject[] = [{ type: 'm.login.password' }];
    if (s.cas) {
      // m.login.cas is Synapse's older name for the same flow; some clients still look for it.
      flows.push({ type: 'm.login.cas' }, { type: 'm.login.sso', identity_providers: [{ id: CAS_IDP_ID, name: 'CAS' }] }, { type: 'm.login.token' });
    }
    if (s.appServices.enabled) flows.push({ type: 'm.login.application_service' });
    ctx.body = { flows };
  });

  r.route('post', '/login', async (ctx) => {
    const req = valid(ctx, loginSchema);
    if (req.type === 'm.login.application_service') {
      const user = req.identifier?.type === 'm.id.user' ? req.identifier.user : req.user;
      if (!user) throw new MatrixError('M_MISSING_PARAM', 'identifier.user is required');
      if (!ctx.accessToken) throw new MatrixError('M_MISSING_TOKEN', 'm.login.application_service needs the application service\'s token', {}, 401);
      const userId = await s.appServices.loginUser(ctx.accessToken, user);
      ctx.body = await s.accounts.login(userId, req.device_id, req.initial_device_display_name ?? null, ctx.ip || null);
      return;
    }
    await s.limits.login.consume(ctx.ip);
    if (req.type === 'm.login.token') {
      const token = (req as { token?: unknown }).token;
      if (typeof token !== 'string') throw new MatrixError('M_MISSING_PARAM', 'token is required');
      const userId = await s.loginTokens.redeem(token);
      if (userId === null) throw new MatrixError('M_FORBIDDEN', 'Invalid login token', {}, 403);
      if (!(await s.accounts.isActive(userId))) throw new MatrixError('M_USER_DEACTIVATED', 'This account has been deactivated', {}, 403);
      ctx.body = {
        ...(await s.accounts.login(userId, req.device_id, req.initial_device_display_name ?? null, ctx.ip || null)),
        well_known: { 'm.homeserver': { base_url: s.publicBaseUrl } },
      };
      return;
    }
    if (req.type !== 'm.login.password') throw new MatrixError('M_UNKNOWN', `Unsupported login type ${req.type}`);
    const user = await loginUser(s, req);
    if (req.password === undefined) throw new MatrixError('M_MISSING_PARAM', 'user and password are required');
    // Failed attempts are counted per (account, address) and per address, never per account
    // alone: an attacker then throttles their own address, and the real user, from theirs,
    // still gets in with the right password.
    const account = user.startsWith('@') ? user : `@${user.toLowerCase()}:${s.serverName}`;
    const pair = `${account}\u0000${ctx.ip}`;
    await s.limits.login_failures_per_address.check(ctx.ip);
    await s.limits.login_failures_per_account_address.check(pair);
    let userId: string;
    try {
      userId = await s.accounts.checkPassword(user, req.password);
    } catch (err) {
      if (err instanceof MatrixError && err.errcode === 'M_FORBIDDEN') {
        await Promise.all([s.limits.login_failures_per_address.penalise(ctx.ip), s.limits.login_failures_per_account_address.penalise(pair)]);
      }
      throw err;
    }
    ctx.body = {
      ...(await s.accounts.login(userId, req.device_id, req.initial_device_display_name ?? null, ctx.ip || null)),
      well_known: { 'm.homeserver': { base_url: s.publicBaseUrl } },
    };
  }, { schema: loginSchema });

  r.authed('post', '/logout', async (ctx, auth) => {
    await s.accounts.logout(auth);
    ctx.body = {};
  });

  r.authed('post', '/logout/all', async (ctx, auth) => {
    await s.accounts.logoutAll(auth.userId);
    ctx.body = {};
  });

  r.authed('get', '/account/whoami', (ctx, auth) => {
    ctx.body = { user_id: auth.userId, device_id: auth.deviceId, is_guest: auth.isGuest };
  });

  // The access token is optional here (spec): without one, the password is reset by proving an
  // email address on the account (m.login.email.identity; src/threepid).
  r.route('post', '/account/password', async (ctx) => {
    const req = valid(ctx, passwordSchema);
    if (ctx.accessToken !== undefined) {
      const auth = await r.authenticate(ctx.accessToken, ctx.ip);
      if (auth.isGuest) throw new MatrixError('M_GUEST_ACCESS_FORBIDDEN', 'Guest accounts may not use this endpoint', {}, 403);
      if (!auth.rateLimitExempt) await s.limits.write.consume(auth.userId);
      await s.accounts.reauthenticate('password:' + auth.userId, auth.userId, uiaRequest(ctx), req.auth as JsonObject | undefined);
      await s.accounts.changePassword(auth, req.new_password, req.logout_devices ?? true);
      ctx.body = {};
      return;
    }
    await s.limits.login.consume(ctx.ip);
    if (!s.threepids.validation) throw new MatrixError('M_MISSING_TOKEN', 'Missing access token', {}, 401);
    let userId: string | null = null;
    await s.accounts.uia.check('password_reset', uiaRequest(ctx), req.auth as JsonObject | undefined, [['m.login.email.identity']], async (stage, a) => {
      if (stage !== 'm.login.email.identity') return false;
      const v = await s.threepids.accounts.validatedCreds(((a.threepid_creds ?? a.threepidCreds) ?? {}) as JsonObject);
      userId = await s.threepids.accounts.userFor(v.medium, v.address);
      if (userId === null) throw new MatrixError('M_THREEPID_NOT_FOUND', 'No account has this email address');
      return true;
    });
    // A session completed by an earlier request does not say whose it was: the email stage is
    // the only one, so it completes in the request that carries it.
    if (userId === null) throw new MatrixError('M_FORBIDDEN', 'The email stage must be completed in this request', {}, 401);
    await s.accounts.resetPassword(userId, req.new_password, req.logout_devices ?? true);
    ctx.body = {};
  }, { schema: passwordSchema });

  r.authed('post', '/account/deactivate', async (ctx, auth) => {
    const req = body(ctx);
    if (req.erase !== undefined && typeof req.erase !== 'boolean') throw new MatrixError('M_BAD_JSON', 'erase must be a boolean');
    // An application service deactivating one of its users needs no UIA (spec: /account/deactivate).
    if (auth.appServiceId === undefined) {
      await s.accounts.reauthenticate('deactivate:' + auth.userId, auth.userId, uiaRequest(ctx), req.auth as JsonObject | undefined);
    }
    if (req.id_server !== undefined && typeof req.id_server !== 'string') throw new MatrixError('M_BAD_JSON', 'id_server must be a string');
    // Bindings made through us are undone first (spec: the server SHOULD unbind on deactivation).
    const unbound = await s.identity.bindings.unbindAll(auth.userId, req.id_server);
    // Its addresses leave the account: they no longer log in, and may go on another account.
    await s.threepids.accounts.removeAll(auth.userId);
    await s.accounts.deactivate(auth.userId);
    if (req.erase === true) await s.erasure.erase(auth.userId);
    ctx.body = { id_server_unbind_result: unbound };
  });

  devicesRoutes(r, s);
  adminRegister(r, s);
}

function devicesRoutes(r: ClientRoutes, s: AccountRouteDeps): void {
  const show = (d: { deviceId: string; displayName: string | null; lastSeenTs: number | null; lastSeenIp: string | null }) => {
    const o: JsonObject = { device_id: d.deviceId };
    if (d.displayName !== null) o.display_name = d.displayName;
    if (d.lastSeenTs !== null) o.last_seen_ts = d.lastSeenTs;
    if (d.lastSeenIp !== null) o.last_seen_ip = d.lastSeenIp;
    return o;
  };
  r.authed('get', '/devices', async (ctx, auth) => {
    ctx.body = { devices: (await s.accounts.listDevices(auth.userId)).map(show) };
  });
  r.authed('get', '/devices/:deviceId', async (ctx, auth) => {
    const d = await s.accounts.getDevice(auth.userId, param(ctx, 'deviceId'));
    if (!d) throw new MatrixError('M_NOT_FOUND', 'Unknown device');
    ctx.body = show(d);
  });
  r.authed('put', '/devices/:deviceId', async (ctx, auth) => {
    const req = valid(ctx, deviceUpdateSchema);
    const ok = await s.accounts.renameDevice(auth.userId, param(ctx, 'deviceId'), req.display_name ?? null);
    if (!ok) throw new MatrixError('M_NOT_FOUND', 'Unknown device');
    ctx.body = {};
  }, { schema: deviceUpdateSchema });
  const deleteDevices = async (ctx: Ctx, userId: string, ids: string[]) => {
    await s.accounts.reauthenticate('delete_devices:' + userId, userId, uiaRequest(ctx), body(ctx).auth as JsonObject | undefined);
    for (const id of ids) await s.accounts.deleteDevice(userId, id);
    ctx.body = {};
  };
  r.authed('delete', '/devices/:deviceId', async (ctx, auth) => {
    const id = param(ctx, 'deviceId');
    if (!(await s.accounts.getDevice(auth.userId, id))) throw new MatrixError('M_NOT_FOUND', 'Unknown device');
    await deleteDevices(ctx, auth.userId, [id]);
  });
  r.authed('post', '/delete_devices', async (ctx, auth) => {
    const req = valid(ctx, deleteDevicesSchema);
    await deleteDevices(ctx, auth.userId, req.devices);
  }, { schema: deleteDevicesSchema });
}

/**
 * The account a password login names: identifier m.id.user (or the legacy `user`), or
 * m.id.thirdparty (or the legacy `medium` and `address`) for an email address on an account.
 * An address on no account fails as a wrong password does (M_FORBIDDEN), saying nothing of
 * which addresses are known.
 */
async function loginUser(s: AccountRouteDeps, req: z.infer<typeof loginSchema>): Promise<string> {
  const id = req.identifier as (JsonObject & { type: string }) | undefined;
  const legacy = req as unknown as JsonObject;
  let medium: unknown;
  let address: unknown;
  if (id?.type === 'm.id.thirdparty') {
    ({ medium, address } = id);
  } else if (id === undefined && req.user === undefined && legacy.medium !== undefined) {
    ({ medium, address } = legacy);
  } else {
    if (id && id.type !== 'm.id.user') throw new MatrixError('M_UNKNOWN', `Unsupported identifier type ${id.type}`);
    const user = id ? (typeof id.user === 'string' ? id.user : undefined) : req.user;
    if (!user) throw new MatrixError('M_MISSING_PARAM', 'user and password are required');
    return user;
  }
  if (typeof medium !== 'string' || typeof address !== 'string' || address.length > 512) throw new MatrixError('M_MISSING_PARAM', 'medium and address are required');
  const userId = await s.threepids.accounts.userFor(medium, address);
  if (userId === null) throw new MatrixError('M_FORBIDDEN', 'Invalid username or password');
  return userId;
}

/** POST /register with type m.login.application_service: no UIA; the AS's namespaces decide. */
async function registerForAppService(s: AccountRouteDeps, ctx: Ctx, req: z.infer<typeof registerSchema>): Promise<JsonObject> {
  if (!ctx.accessToken) throw new MatrixError('M_MISSING_TOKEN', 'm.login.application_service needs the application service\'s token', {}, 401);
  if (req.username === undefined || req.username === '') throw new MatrixError('M_MISSING_PARAM', 'username is required', {}, 400);
  const { appServiceId, userId, localpart } = await s.appServices.registrant(ctx.accessToken, req.username);
  await s.accounts.createAccountWithHash(localpart, null, false, undefined, appServiceId);
  if (req.inhibit_login) return { user_id: userId, home_server: s.serverName };
  return { ...(await s.accounts.login(userId, req.device_id, req.initial_device_display_name ?? null, ctx.ip || null)) };
}

/** Synapse's /_synapse/admin/v1/register (shared-secret registration), used by tooling and benchmarks. */
function adminRegister(r: ClientRoutes, s: AccountRouteDeps): void {
  // In s.registrationNonces (shared between processes in a cluster), each good for a minute and
  // spent by the first POST that names it.
  r.raw('get', '/_synapse/admin/v1/register', async (ctx) => {
    if (!s.registration.sharedSecret) throw new MatrixError('M_FORBIDDEN', 'Shared secret registration is not enabled', {}, 400);
    // Each nonce is stored for a minute: unlimited, an anonymous GET loop would fill the map (or
    // Redis). The POST spends a nonce, so this limits it too.
    await s.limits.write.consume(`shared-secret-nonce:${ctx.ip}`);
    const nonce = randomBytes(16).toString('hex');
    await s.registrationNonces.set(nonce, '1', 60_000);
    ctx.body = { nonce };
  });
  r.raw('post', '/_synapse/admin/v1/register', async (ctx) => {
    const secret = s.registration.sharedSecret;
    if (!secret) throw new MatrixError('M_FORBIDDEN', 'Shared secret registration is not enabled', {}, 400);
    const req = parse(
      z.object({
        nonce: z.string(),
        username: z.string().max(255),
        password: z.string().max(1024),
        admin: z.boolean().optional(),
        mac: z.string(),
        displayname: z.string().max(255).optional(),
      }).passthrough(),
      (ctx.state as { body?: unknown }).body,
    );
    if ((await s.registrationNonces.take(req.nonce)) === undefined) throw new MatrixError('M_UNKNOWN', 'Unrecognised nonce');
    const mac = createHmac('sha1', secret)
      .update([req.nonce, req.username, req.password, req.admin ? 'admin' : 'notadmin'].join('\0'))
      .digest('hex');
    const given = Buffer.from(req.mac.toLowerCase());
    if (given.length !== mac.length || !timingSafeEqual(given, Buffer.from(mac))) {
      throw new MatrixError('M_FORBIDDEN', 'HMAC incorrect');
    }
    const userId = await s.accounts.createAccount(req.username.toLowerCase(), req.password, req.admin ?? false, req.displayname);
    ctx.body = await s.accounts.login(userId, undefined, null, ctx.ip || null);
  });
}
