// The public room directory (/publicRooms, /directory/list/room); src/room/directory.ts decides.

import { z } from 'zod';
import { body } from '../middleware.js';
import { parse, param, queryInt, queryString, type ApiServices, type ClientRoutes, valid } from '../routing.js';

// Clients send null for "not given" (matrix-js-sdk sends since: null on the first page).
const publicRoomsSchema = z
  .object({
    limit: z.number().int().min(0).nullish(),
    since: z.string().max(64).nullish(),
    server: z.string().max(255).nullish(),
    include_all_networks: z.boolean().nullish(),
    third_party_instance_id: z.string().max(255).nullish(),
    filter: z
      .object({
        generic_search_term: z.string().max(512).nullish(),
        // null stands for rooms without a type (not spaces).
        room_types: z.array(z.string().max(255).nullable()).max(100).nullish(),
      })
      .passthrough()
      .nullish(),
  })
  .passthrough();

type DirectoryRouteDeps = Pick<ApiServices, 'directory' | 'appServices' | 'serverName'>;

export function directoryRoutes(r: ClientRoutes, s: DirectoryRouteDeps): void {
  r.route('get', '/publicRooms', async (ctx) => {
    // Spec: GET may be called without auth; a server may require it. We serve both.
    ctx.body = await s.directory.publicRooms({
      limit: queryInt(ctx, 'limit', 100, 0, 500),
      since: queryString(ctx, 'since'),
      server: queryString(ctx, 'server'),
    });
  });
  r.authed('post', '/publicRooms', async (ctx) => {
    const req = valid(ctx, publicRoomsSchema);
    // The spec has `server` in the query string; older clients put it in the body.
    const server = queryString(ctx, 'server') ?? req.server ?? undefined;
    ctx.body = await s.directory.publicRooms({
      limit: Math.min(req.limit ?? 100, 500),
      since: req.since ?? undefined,
      server,
      term: req.filter?.generic_search_term ?? undefined,
      roomTypes: req.filter?.room_types ?? undefined,
      // Network lists are this server's application services'; another server has its own.
      roomIds: server && server !== s.serverName ? undefined : await networkRooms(s, req.third_party_instance_id ?? undefined, req.include_all_networks === true),
      includeAllNetworks: req.include_all_networks === true,
      thirdPartyInstanceId: req.third_party_instance_id ?? undefined,
    });
  }, { schema: publicRoomsSchema });

  r.route('get', '/directory/list/room/:roomId', async (ctx) => {
    ctx.body = { visibility: await s.directory.visibility(param(ctx, 'roomId')) };
  });
  r.authed('put', '/directory/list/room/:roomId', async (ctx, auth) => {
    const req = parse(z.object({ visibility: z.enum(['public', 'private']) }).passthrough(), body(ctx));
    await s.directory.setVisibility(auth.userId, param(ctx, 'roomId'), req.visibility);
    ctx.body = {};
  });
}

/**
 * The rooms of an application service's network list (third_party_instance_id), or the main
 * directory plus every such list (include_all_networks); undefined: the main directory alone.
 */
async function networkRooms(s: DirectoryRouteDeps, instanceId: string | undefined, allNetworks: boolean): Promise<string[] | undefined> {
  if (instanceId !== undefined) return s.appServices.listedRooms(instanceId);
  if (!allNetworks) return undefined;
  return s.appServices.allNetworksRooms();
}
