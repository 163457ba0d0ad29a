// Sending mail over SMTP (config `email`), through nodemailer: it speaks ESMTP with STARTTLS,
// SMTP AUTH and the HELO fallback for servers that refuse EHLO, and encodes headers and bodies,
// so that no address or text of a user's can break the message's framing.
//
// Invariants: with require_transport_security the mail is never sent over plain text (the
// relay must offer STARTTLS, or force_tls starts with TLS). A send that fails or times out
// rejects; the caller answers the client with an error and no session advances.

import nodemailer from 'nodemailer';

export interface MailMessage {
  to: string;
  subject: string;
  text: string;
  html?: string;
}

export interface Mailer {
  send(message: MailMessage): Promise<void>;
  close(): void;
}

export interface SmtpConfig {
  smtp_host: string;
  smtp_port: number;
  smtp_user: string | null;
  smtp_pass: string | null;
  require_transport_security: boolean;
  force_tls: boolean;
  notif_from: string;
  send_timeout_ms: number;
}

export function createSmtpMailer(c: SmtpConfig): Mailer {
  const transport = nodemailer.createTransport({
    host: c.smtp_host,
    port: c.smtp_port,
    secure: c.force_tls,
    requireTLS: c.require_transport_security && !c.force_tls,
    // Without required security, a relay that offers STARTTLS is still used with it.
    ...(c.smtp_user !== null && c.smtp_pass !== null ? { auth: { user: c.smtp_user, pass: c.smtp_pass } } : {}),
    connectionTimeout: c.send_timeout_ms,
    greetingTimeout: c.send_timeout_ms,
    socketTimeout: c.send_timeout_ms,
  });
  return {
    async send(m) {
      await transport.sendMail({ from: c.notif_from, to: m.to, subject: m.subject, text: m.text, ...(m.html !== undefined ? { html: m.html } : {}) });
    },
    close() {
      transport.close();
    },
  };
}
