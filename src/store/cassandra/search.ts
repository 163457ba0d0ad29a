// Full-text search (SearchStore) on a term table this module maintains; same matches as the
// SQLite FTS5 index (unicode61, remove_diacritics 2, each query word a quoted prefix phrase).
//
// - The hook indexes an accepted event's searchable text (m.room.message body, m.room.name name,
//   m.room.topic topic, when a string) in the event's logged batch: one search_docs row (the text
//   and what filters need) and one search_terms row per distinct token, both in the room's
//   bucket of SEARCH_BUCKET positions; search_buckets lists a room's non-empty buckets and
//   search_of_event finds a document for its redaction, which deletes the document row in the
//   redaction's batch. Term rows of a deleted document may stay: every candidate is checked
//   against its document, so they never match.
// - A query word is tokenised like the text; its first token, as a prefix range on the term
//   table, selects candidates, and the document text decides: the word's tokens must occur in
//   sequence, the last as a prefix (FTS5's "w1 w2"*). A word without tokens matches nothing.
// - Ranking: BM25 (k1 1.2, b 0.75) over the matches, every phrase weighted alike: the corpus
//   statistics FTS5 uses are not kept, so ranks agree with SQLite's in order for one-word
//   queries but not in value.
// - Backfilled events are not indexed (the room module runs hooks for timeline events only).
// - A document indexes at most MAX_TERMS_PER_DOC distinct terms (bounded batch size).

import type { PersistEventInput, SearchHit, SearchKey, SearchQuery, SearchStore, StoredEvent } from '../types.js';
import { num, type CassandraContext, type CqlStatement, type EventWriteHook } from './context.js';
import { mapLimit, roomBucket, type DerivedDeps } from './derived-common.js';

/** Longer tokens are stored cut to this many code points (the document check stays exact). */
const MAX_TERM = 64;
/**
 * Distinct terms indexed per document (the first ones, in text order): keeps a 64 KiB body's
 * term rows (~100 bytes each) a bounded part of the event's logged batch. Words that first
 * occur after them are not found; real messages stay far below it.
 */
export const MAX_TERMS_PER_DOC = 1000;
const PARALLEL = 16;

const SEARCHABLE: Record<string, { field: string; key: SearchKey }> = {
  'm.room.message': { field: 'body', key: 'content.body' },
  'm.room.name': { field: 'name', key: 'content.name' },
  'm.room.topic': { field: 'topic', key: 'content.topic' },
};

/**
 * FTS5 unicode61 with remove_diacritics 2: letters, numbers and private-use characters make
 * tokens, everything else separates. Each character is folded to lower case on its own (no
 * final-sigma rule), Latin letters lose their diacritics, and combining marks in the text join
 * the token and are dropped.
 */
export function tokenize(text: string): string[] {
  let folded = '';
  for (const ch of text) {
    if (MARK.test(ch)) continue;
    const lower = ch.toLowerCase();
    folded += LATIN.test(lower) ? lower.normalize('NFD').replace(MARKS, '') : lower;
  }
  return folded.split(/[^\p{L}\p{N}\p{Co}]+/u).filter((t) => t.length > 0);
}

const MARK = /^\p{M}$/u;
const MARKS = /\p{M}+/gu;
const LATIN = /^\p{Script=Latin}/u;

function termOf(token: string): string {
  const cps = Array.from(token);
  return cps.length > MAX_TERM ? cps.slice(0, MAX_TERM).join('') : token;
}

/** Occurrences of the phrase in the document's tokens (last phrase token as a prefix). */
function phraseCount(doc: string[], phrase: string[]): number {
  let n = 0;
  const last = phrase.length - 1;
  for (let i = 0; i + last < doc.length; i++) {
    let ok = true;
    for (let k = 0; k < last && ok; k++) ok = doc[i + k] === phrase[k];
    if (ok && doc[i + last]!.startsWith(phrase[last]!)) n++;
  }
  return n;
}

/** Matrix type filters: '*' matches any run of characters, everything else is literal. */
function typeMatches(pattern: string, type: string): boolean {
  if (!pattern.includes('*')) return pattern === type;
  const parts = pattern.split('*');
  if (!type.startsWith(parts[0]!)) return false;
  let at = parts[0]!.length;
  for (let i = 1; i < parts.length - 1; i++) {
    const j = type.indexOf(parts[i]!, at);
    if (j < 0) return false;
    at = j + parts[i]!.length;
  }
  const tail = parts[parts.length - 1]!;
  return type.length - tail.length >= at && type.endsWith(tail);
}

interface Doc {
  roomId: string;
  stream: number;
  eventId: string;
  tokens: string[];
  /** Occurrences per query phrase. */
  freqs: number[];
}

export class CassandraSearchStore implements SearchStore {
  constructor(
    private readonly ctx: CassandraContext,
    private readonly deps: DerivedDeps,
  ) {}

  readonly hook: EventWriteHook = {
    forEvent: (input, pos) => this.statementsFor(input, pos),
    forRedaction: (roomId, targetEventId) => this.redactionStatements(roomId, targetEventId),
  };

  private statementsFor(input: PersistEventInput, pos: number): CqlStatement[] {
    const s = SEARCHABLE[input.pdu.type];
    if (s === undefined) return [];
    const text = input.pdu.content[s.field];
    if (typeof text !== 'string') return [];
    const roomId = input.pdu.room_id ?? '';
    const bucket = roomBucket(pos);
    const out: CqlStatement[] = [
      {
        query: `INSERT INTO search_docs (room_id, bucket, stream, event_id, key, event_type, sender, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        params: [roomId, bucket, pos, input.eventId, s.key, input.pdu.type, input.pdu.sender, text],
      },
      { query: 'INSERT INTO search_buckets (room_id, bucket) VALUES (?, ?)', params: [roomId, bucket] },
      { query: 'INSERT INTO search_of_event (event_id, room_id, stream) VALUES (?, ?, ?)', params: [input.eventId, roomId, pos] },
    ];
    for (const term of [...new Set(tokenize(text).map(termOf))].slice(0, MAX_TERMS_PER_DOC)) {
      out.push({ query: 'INSERT INTO search_terms (room_id, bucket, term, stream) VALUES (?, ?, ?, ?)', params: [roomId, bucket, term, pos] });
    }
    return out;
  }

  private async redactionStatements(roomId: string, targetEventId: string): Promise<CqlStatement[]> {
    const row = (await this.ctx.execute('SELECT room_id, stream FROM search_of_event WHERE event_id = ?', [targetEventId])).first();
    if (row === null || row['room_id'] !== roomId) return [];
    const stream = num(row['stream']);
    return [
      {
        query: 'DELETE FROM search_docs WHERE room_id = ? AND bucket = ? AND stream = ?',
        params: [roomId, roomBucket(stream), stream],
      },
      { query: 'DELETE FROM search_of_event WHERE event_id = ?', params: [targetEventId] },
    ];
  }

  async searchEvents(q: SearchQuery): Promise<SearchHit[]> {
    this.ctx.checkOpen();
    const limit = Math.floor(q.limit);
    if (!(limit > 0)) return [];
    const phrases = this.phrases(q);
    if (phrases === null) return [];
    const parts = await this.partitions(q.roomIds);
    if (q.order === 'recent') {
      const top = q.before === undefined ? Infinity : roomBucket(q.before);
      const found: Doc[] = [];
      // Buckets are position ranges: once a bucket's matches fill the page, lower ones cannot
      // beat them.
      for (const bucket of [...new Set(parts.map((p) => p.bucket))].sort((a, b) => b - a)) {
        if (bucket > top) continue;
        const here = parts.filter((p) => p.bucket === bucket);
        for (const docs of await mapLimit(here, PARALLEL, (p) => this.matches(p.roomId, p.bucket, phrases, q, true))) found.push(...docs);
        if (found.length >= limit) break;
      }
      found.sort((a, b) => b.stream - a.stream);
      return this.hits(found.slice(0, limit), () => 0, phrases);
    }
    const all = (await mapLimit(parts, PARALLEL, (p) => this.matches(p.roomId, p.bucket, phrases, q, false))).flat();
    const score = bm25(all, phrases.length);
    all.sort((a, b) => score(b) - score(a) || b.stream - a.stream);
    const offset = Math.max(0, Math.floor(q.offset ?? 0));
    return this.hits(all.slice(offset, offset + limit), score, phrases);
  }

  async countEvents(q: SearchQuery): Promise<number> {
    this.ctx.checkOpen();
    const phrases = this.phrases(q);
    if (phrases === null) return 0;
    const parts = await this.partitions(q.roomIds);
    const counts = await mapLimit(parts, PARALLEL, async (p) => (await this.matches(p.roomId, p.bucket, phrases, q, false)).length);
    return counts.reduce((a, b) => a + b, 0);
  }

  /** The query's phrases, or null when nothing can match. */
  private phrases(q: SearchQuery): string[][] | null {
    const words = q.words.filter((w) => w.length > 0);
    if (words.length === 0 || q.roomIds.length === 0 || q.keys.length === 0) return null;
    if (q.senders !== undefined && q.senders.length === 0) return null;
    if (q.types !== undefined && q.types.length === 0) return null;
    const phrases = words.map(tokenize);
    // FTS5 matches nothing for an empty phrase, whatever else the query asks.
    return phrases.some((p) => p.length === 0) ? null : phrases;
  }

  private async partitions(roomIds: string[]): Promise<{ roomId: string; bucket: number }[]> {
    const rooms = [...new Set(roomIds)];
    const lists = await mapLimit(rooms, PARALLEL, async (roomId) =>
      (await this.ctx.all('SELECT bucket FROM search_buckets WHERE room_id = ?', [roomId])).map((r) => ({ roomId, bucket: num(r['bucket']) })),
    );
    return lists.flat();
  }

  /** Documents of one room bucket that match every phrase and pass the query's filters. */
  private async matches(roomId: string, bucket: number, phrases: string[][], q: SearchQuery, paged: boolean): Promise<Doc[]> {
    const before = paged && q.before !== undefined ? q.before : Number.MAX_SAFE_INTEGER;
    let candidates: Set<number> | null = null;
    const firsts = [...new Set(phrases.map((p) => termOf(p[0]!)))].sort((a, b) => b.length - a.length);
    for (const prefix of firsts) {
      const rows = await this.ctx.all(
        'SELECT stream FROM search_terms WHERE room_id = ? AND bucket = ? AND term >= ? AND term < ?',
        [roomId, bucket, prefix, `${prefix}\u{10FFFF}`],
      );
      const streams = new Set<number>();
      for (const r of rows) {
        const s = num(r['stream']);
        if (s < before && (candidates === null || candidates.has(s))) streams.add(s);
      }
      candidates = streams;
      if (candidates.size === 0) return [];
    }
    const list = [...(candidates ?? [])];
    const out: Doc[] = [];
    for (let i = 0; i < list.length; i += 100) {
      const rows = await this.ctx.execute(
        'SELECT stream, event_id, key, event_type, sender, body FROM search_docs WHERE room_id = ? AND bucket = ? AND stream IN ?',
        [roomId, bucket, list.slice(i, i + 100)],
      );
      for (const r of rows.rows) {
        if (!q.keys.includes(r['key'] as SearchKey)) continue;
        const type = r['event_type'] as string;
        const sender = r['sender'] as string;
        if (q.types !== undefined && !q.types.some((t) => typeMatches(t, type))) continue;
        if (q.notTypes !== undefined && q.notTypes.some((t) => typeMatches(t, type))) continue;
        if (q.senders !== undefined && !q.senders.includes(sender)) continue;
        if (q.notSenders !== undefined && q.notSenders.includes(sender)) continue;
        const tokens = tokenize(r['body'] as string);
        const freqs = phrases.map((p) => phraseCount(tokens, p));
        if (freqs.some((f) => f === 0)) continue;
        out.push({ roomId, stream: num(r['stream']), eventId: r['event_id'] as string, tokens, freqs });
      }
    }
    return out;
  }

  private async hits(docs: Doc[], score: (d: Doc) => number, _phrases: string[][]): Promise<SearchHit[]> {
    if (docs.length === 0) return [];
    const events = await this.deps.rooms().getEvents(docs.map((d) => d.eventId));
    const out: SearchHit[] = [];
    for (const d of docs) {
      const ev: StoredEvent | undefined = events.get(d.eventId);
      // A document whose event is gone (purged) or no longer in the timeline matches nothing.
      if (ev === undefined || ev.roomId !== d.roomId || ev.outlier || ev.softFailed || ev.rejected !== null || ev.redactedBy !== null) continue;
      out.push({ event: ev, rank: score(d) });
    }
    return out;
  }
}

/** BM25 over the matched documents (their mean length stands in for the corpus's). */
function bm25(docs: Doc[], phrases: number): (d: Doc) => number {
  const k1 = 1.2;
  const b = 0.75;
  const avg = docs.length > 0 ? docs.reduce((s, d) => s + d.tokens.length, 0) / docs.length : 1;
  const cache = new Map<Doc, number>();
  return (d) => {
    let s = cache.get(d);
    if (s === undefined) {
      s = 0;
      for (let i = 0; i < phrases; i++) {
        const f = d.freqs[i]!;
        s += (f * (k1 + 1)) / (f + k1 * (1 - b + (b * d.tokens.length) / Math.max(avg, 1)));
      }
      cache.set(d, s);
    }
    return s;
  };
}
