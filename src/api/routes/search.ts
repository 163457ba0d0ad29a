// POST /search (room_events only; the spec defines no other category). The work is in
// src/room/search-service.ts; this module parses the request.

import { z } from 'zod';
import { MatrixError } from '../../errors.js';
import { queryString, type ApiServices, type ClientRoutes, valid } from '../routing.js';

const strList = z.array(z.string().max(255)).max(1000);

const searchSchema = z
  .object({
    search_categories: z
      .object({
        room_events: z
          .object({
            search_term: z.string().max(1024),
            keys: z.array(z.enum(['content.body', 'content.name', 'content.topic'])).max(3).optional(),
            filter: z
              .object({
                limit: z.number().int().min(0).optional(),
                rooms: strList.optional(),
                not_rooms: strList.optional(),
                senders: strList.optional(),
                not_senders: strList.optional(),
                types: strList.optional(),
                not_types: strList.optional(),
                include_leave: z.boolean().optional(),
              })
              .passthrough()
              .optional(),
            order_by: z.enum(['recent', 'rank']).optional(),
            event_context: z
              .object({
                before_limit: z.number().int().min(0).optional(),
                after_limit: z.number().int().min(0).optional(),
                include_profile: z.boolean().optional(),
              })
              .passthrough()
              .optional(),
            include_state: z.boolean().optional(),
            groupings: z
              .object({ group_by: z.array(z.object({ key: z.enum(['room_id', 'sender']) }).passthrough()).max(2).optional() })
              .passthrough()
              .optional(),
          })
          .passthrough()
          .optional(),
      })
      .passthrough(),
  })
  .passthrough();

type SearchRouteDeps = Pick<ApiServices, 'search'>;

export function searchRoutes(r: ClientRoutes, s: SearchRouteDeps): void {
  r.authed('post', '/search', async (ctx, auth) => {
    const req = valid(ctx, searchSchema);
    const re = req.search_categories.room_events;
    const nextBatch = queryString(ctx, 'next_batch');
    if (!re) {
      if (nextBatch !== undefined) throw new MatrixError('M_INVALID_PARAM', 'next_batch given without a category to page');
      ctx.body = { search_categories: {} };
      return;
    }
    const f = re.filter;
    const roomEvents = await s.search.searchRoomEvents(auth.userId, {
      searchTerm: re.search_term,
      keys: re.keys,
      filter: f && {
        rooms: f.rooms,
        notRooms: f.not_rooms,
        senders: f.senders,
        notSenders: f.not_senders,
        types: f.types,
        notTypes: f.not_types,
        limit: f.limit,
        includeLeave: f.include_leave,
      },
      orderBy: re.order_by,
      eventContext: re.event_context && {
        beforeLimit: re.event_context.before_limit,
        afterLimit: re.event_context.after_limit,
        includeProfile: re.event_context.include_profile,
      },
      includeState: re.include_state,
      groupBy: re.groupings?.group_by?.map((g) => g.key),
      nextBatch,
    });
    ctx.body = { search_categories: { room_events: roomEvents } };
  }, { schema: searchSchema });
}
