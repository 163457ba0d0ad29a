// Full-text search over room events (POST /search). The store answers text matches inside the
// rooms it is given; who may see which event (membership, history visibility) is decided above
// the store, which over-fetches and pages on.
//
// Indexed: content.body of m.room.message, content.name of m.room.name, content.topic of
// m.room.topic, while the event is not redacted (a redaction removes it from the index in the
// same commit). Encrypted events have no plaintext and are never indexed.

import type { StoredEvent } from './types.js';

export type SearchKey = 'content.body' | 'content.name' | 'content.topic';

export interface SearchQuery {
  /** Words to find; each matches as a prefix, all must occur (AND). Empty: nothing matches. */
  words: string[];
  roomIds: string[];
  keys: SearchKey[];
  /** Matrix filter semantics: an empty allow-list matches nothing; '*' is a wildcard in types. */
  types?: string[];
  notTypes?: string[];
  senders?: string[];
  notSenders?: string[];
  /** 'recent': newest first. 'rank': best match first, then newest. */
  order: 'recent' | 'rank';
  /** 'recent' only: events with stream < before. */
  before?: number;
  /** 'rank' only: matches to skip. */
  offset?: number;
  limit: number;
}

export interface SearchHit {
  event: StoredEvent;
  /** Higher is better (the negated BM25 score for SQLite). */
  rank: number;
}

export interface SearchStore {
  searchEvents(q: SearchQuery): Promise<SearchHit[]>;
  /** How many events match, ignoring paging (before/offset/limit). */
  countEvents(q: SearchQuery): Promise<number>;
}
