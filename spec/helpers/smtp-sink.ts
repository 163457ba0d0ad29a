// A tiny in-process SMTP server for specs (node:net): accepts mail on loopback, keeps each
// message (envelope and decoded text parts), and lets a test await the next mail to an address.
// Options mimic relays the mailer must cope with: one that refuses EHLO (as SyTest's does), one
// that rejects the next message.

import { createServer, type Server, type Socket } from 'node:net';

export interface ReceivedMail {
  from: string;
  to: string;
  /** Header fields, names lower-cased (the first of each). */
  headers: Record<string, string>;
  /** The decoded text/plain part (or the whole body when it is not multipart). */
  text: string;
  html: string | null;
}

export class SmtpSink {
  readonly mails: ReceivedMail[] = [];
  private waiters: Array<{ to: string; resolve: (m: ReceivedMail) => void }> = [];
  /** Answer EHLO with 500 (HELO still works), as SyTest's mail server does. */
  refuseEhlo = false;
  /** Reject the next message's DATA with 554. */
  rejectNext = false;
  readonly sessions: string[][] = [];

  private constructor(private readonly server: Server, readonly port: number) {}

  static async start(): Promise<SmtpSink> {
    let sink: SmtpSink | undefined;
    const server = createServer((sock) => sink!.serve(sock));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const addr = server.address();
    if (addr === null || typeof addr === 'string') throw new Error('no port');
    sink = new SmtpSink(server, addr.port);
    return sink;
  }

  /** The next mail to `to` (already received and not yet taken, or the next to arrive). */
  next(to: string, timeoutMs = 5000): Promise<ReceivedMail> {
    const i = this.unclaimed.findIndex((m) => m.to === to);
    if (i >= 0) return Promise.resolve(this.unclaimed.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const w = { to, resolve: (m: ReceivedMail) => { clearTimeout(t); resolve(m); } };
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`no mail to ${to} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** Mails not yet taken by next(). */
  private readonly unclaimed: ReceivedMail[] = [];

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private serve(sock: Socket): void {
    const commands: string[] = [];
    this.sessions.push(commands);
    let buf = '';
    let inData = false;
    let from = '';
    let to = '';
    const reply = (line: string) => sock.write(line + '\r\n');
    reply('220 sink ready');
    sock.setEncoding('latin1');
    sock.on('error', () => sock.destroy());
    sock.on('data', (chunk: string) => {
      buf += chunk;
      for (;;) {
        if (inData) {
          const end = buf.indexOf('\r\n.\r\n');
          if (end < 0) return;
          const data = buf.slice(0, end + 2);
          buf = buf.slice(end + 5);
          inData = false;
          if (this.rejectNext) {
            this.rejectNext = false;
            reply('554 rejected');
          } else {
            this.receive(from, to, data);
            reply('250 ok');
          }
          from = to = '';
          continue;
        }
        const nl = buf.indexOf('\r\n');
        if (nl < 0) return;
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        const verb = line.split(' ')[0]!.toUpperCase();
        commands.push(verb);
        if (verb === 'EHLO') reply(this.refuseEhlo ? '500 unrecognised command' : '250 sink');
        else if (verb === 'HELO') reply('250 sink');
        else if (verb === 'MAIL') (from = angle(line)), reply('250 ok');
        else if (verb === 'RCPT') (to = angle(line)), reply('250 ok');
        else if (verb === 'DATA') (inData = true), reply('354 go on');
        else if (verb === 'RSET' || verb === 'NOOP') reply('250 ok');
        else if (verb === 'QUIT') reply('221 bye'), sock.end();
        else reply('500 unrecognised command');
      }
    });
  }

  private receive(from: string, to: string, raw: string): void {
    const data = raw.replace(/^\.\./gm, '.');
    const { headers, body } = splitHeaders(data);
    const parts = parseParts(headers, body);
    const mail: ReceivedMail = {
      from,
      to,
      headers,
      text: parts.find((p) => p.type.startsWith('text/plain'))?.text ?? '',
      html: parts.find((p) => p.type.startsWith('text/html'))?.text ?? null,
    };
    this.mails.push(mail);
    const w = this.waiters.find((x) => x.to === to);
    if (w) {
      this.waiters = this.waiters.filter((x) => x !== w);
      w.resolve(mail);
    } else {
      this.unclaimed.push(mail);
    }
  }
}

function angle(line: string): string {
  const m = /<([^>]*)>/.exec(line);
  return m ? m[1]! : line.split(':').slice(1).join(':').trim();
}

function splitHeaders(data: string): { headers: Record<string, string>; body: string } {
  const end = data.indexOf('\r\n\r\n');
  const head = end < 0 ? data : data.slice(0, end);
  const body = end < 0 ? '' : data.slice(end + 4);
  const headers: Record<string, string> = {};
  for (const line of head.replace(/\r\n[ \t]+/g, ' ').split('\r\n')) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const name = line.slice(0, i).trim().toLowerCase();
    if (!(name in headers)) headers[name] = line.slice(i + 1).trim();
  }
  return { headers, body };
}

function parseParts(headers: Record<string, string>, body: string): Array<{ type: string; text: string }> {
  const type = (headers['content-type'] ?? 'text/plain').toLowerCase();
  const boundary = /boundary="?([^";]+)"?/i.exec(headers['content-type'] ?? '')?.[1];
  if (type.startsWith('multipart/') && boundary) {
    const out: Array<{ type: string; text: string }> = [];
    for (const chunk of body.split(`--${boundary}`).slice(1)) {
      if (chunk.startsWith('--')) break;
      const part = splitHeaders(chunk.replace(/^\r\n/, ''));
      out.push(...parseParts(part.headers, part.body));
    }
    return out;
  }
  const enc = (headers['content-transfer-encoding'] ?? '7bit').toLowerCase();
  const bytes =
    enc === 'base64'
      ? Buffer.from(body.replace(/\s+/g, ''), 'base64')
      : enc === 'quoted-printable'
        ? Buffer.from(body.replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/gi, (_, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1')
        : Buffer.from(body, 'latin1');
  return [{ type, text: bytes.toString('utf8') }];
}

/** The validation link in a mail's text. */
export function linkIn(mail: ReceivedMail): string {
  const m = /(https?:\/\/\S+)/.exec(mail.text);
  if (!m) throw new Error(`no link in mail: ${mail.text}`);
  return m[1]!;
}
