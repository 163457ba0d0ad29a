// The config's account sections: registration, CAS single sign-on, reCAPTCHA, identity servers
// and email (composed in src/config/schema.ts). Invariants: every object is strict and every
// section prefaults to `{}` (schema.ts's header); cross-section rules (require_email needs email)
// are schema.ts's.

import { z } from 'zod';
import { host, port } from './primitives.js';

export const registrationSection = z
  .strictObject({
    enabled: z.boolean().default(true),
    token: z.string().min(1).nullable().default(null),
    allow_guests: z.boolean().default(false),
    // Registration only with a validated email address (needs email.enabled).
    require_email: z.boolean().default(false),
    shared_secret: z
      .string()
      .min(16, { error: 'must be at least 16 characters (generate-config writes a random one)' })
      .nullable()
      .default(null),
  })
  .prefault({});

// Single sign-on through a CAS server (src/auth/sso/): m.login.sso and m.login.cas at /login,
// an m.login.sso UIA stage, login tokens (m.login.token). The validation request goes to the
// operator-chosen server_url, not through the outbound guard (see src/auth/sso/cas.ts).
export const casSection = z
  .strictObject({
    enabled: z.boolean().default(false),
    // The CAS server's base URL; /login and /proxyValidate are under it.
    server_url: z.url({ protocol: /^https?$/ }).nullable().default(null),
    // Base URL CAS sends browsers back to (…/_matrix/client/r0/login/cas/ticket is appended);
    // null: public_baseurl.
    service_url: z.url({ protocol: /^https?$/ }).nullable().default(null),
    // The CAS attribute a new user's display name is taken from; null: the localpart.
    displayname_attribute: z.string().min(1).nullable().default(null),
    // Attributes a CAS user must have to log in: name -> required value, or null for any value.
    required_attributes: z.record(z.string().min(1), z.string().nullable()).default({}),
  })
  .superRefine((c, ctx) => {
    if (c.enabled && c.server_url === null) ctx.addIssue({ code: 'custom', path: ['server_url'], message: 'required when cas.enabled is true' });
  })
  .prefault({});

// Google reCAPTCHA (m.login.recaptcha). enabled: /register offers the stage and can verify it;
// required_for_registration: every registration flow starts with it.
export const recaptchaSection = z
  .strictObject({
    enabled: z.boolean().default(false),
    required_for_registration: z.boolean().default(true),
    public_key: z.string().min(1).nullable().default(null),
    private_key: z.string().min(1).nullable().default(null),
    siteverify_api: z.url({ protocol: /^https?$/ }).default('https://www.recaptcha.net/recaptcha/api/siteverify'),
  })
  .superRefine((c, ctx) => {
    if (c.enabled && (c.public_key === null || c.private_key === null)) {
      ctx.addIssue({ code: 'custom', path: ['private_key'], message: 'public_key and private_key are required when recaptcha.enabled is true' });
    }
  })
  .prefault({});

// Identity servers (src/identity): the ones a client names (id_server) for 3PID binding and
// third-party invites. Requests go through the outbound guard like any user-steered request.
export const identitySection = z
  .strictObject({
    // TLS certificate checks on identity-server requests. Only a test rig with a self-signed
    // identity server turns them off (Synapse: use_insecure_ssl_client_just_for_testing_do_not_use).
    verify_tls: z.boolean().default(true),
    request_timeout_ms: z.int().min(100).default(15_000),
  })
  .prefault({});

// Email on accounts (src/threepid): this server validates addresses itself by sending a link
// over SMTP, for registration, adding an address, and password reset. Off by default: with it
// off, requestToken answers M_THREEPID_DENIED and no email stage is offered.
export const emailSection = z
  .strictObject({
    enabled: z.boolean().default(false),
    smtp_host: host.default('localhost'),
    smtp_port: port.default(25),
    smtp_user: z.string().min(1).nullable().default(null),
    smtp_pass: z.string().min(1).nullable().default(null),
    // Refuse to send unless the connection is encrypted (STARTTLS, or TLS from the start with
    // force_tls). Off only for a relay on this machine or a test rig.
    require_transport_security: z.boolean().default(true),
    // TLS from the first byte (port 465) rather than STARTTLS.
    force_tls: z.boolean().default(false),
    notif_from: z.string().min(3).max(255).default('Hearth <noreply@localhost>'),
    app_name: z.string().min(1).max(100).default('Matrix'),
    // How long a validation link stays good.
    validation_token_lifetime_ms: z.int().min(60_000).default(3_600_000),
    send_timeout_ms: z.int().min(1000).default(30_000),
  })
  .prefault({});
