// Row helpers shared by the Cassandra media stores (./media.ts, ./remote-media.ts).

import type cassandra from 'cassandra-driver';
import type { ThumbnailRecord } from '../media-types.js';
import { num } from './context.js';

export const THUMB_COLUMNS = 'media_id, req_width, req_height, method, animated, width, height, content_type, size, created_ts';

export function toThumb(r: cassandra.types.Row): ThumbnailRecord {
  return {
    mediaId: r['media_id'] as string,
    reqWidth: r['req_width'] as number,
    reqHeight: r['req_height'] as number,
    method: r['method'] as 'crop' | 'scale',
    animated: r['animated'] === true,
    width: r['width'] as number,
    height: r['height'] as number,
    contentType: r['content_type'] as string,
    size: num(r['size']),
    createdTs: num(r['created_ts']),
  };
}

/** Optional text: undefined (unset, no tombstone) for null. */
export const opt = (s: string | null): string | undefined => (s === null ? undefined : s);
