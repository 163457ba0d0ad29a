// Push rule CRUD under /pushrules/ (spec "Push Rules: API").

import { MatrixError, type Errcode } from '../../errors.js';
import { body, type Ctx } from '../middleware.js';
import { param, queryString, type ApiServices, type ClientRoutes } from '../routing.js';
import { isPushRuleKind } from '../../push/default-rules.js';
import { addRule, deleteRule, getRule, PushRuleError, setActions, setEnabled } from '../../push/ruleset.js';

export function pushRuleRoutes(r: ClientRoutes, s: Pick<ApiServices, 'pushRules'>): void {
  const rules = s.pushRules;
  r.authed('get', '/pushrules/', async (ctx, auth) => {
    ctx.body = await rules.ruleset(auth.userId);
  });
  r.authed('get', '/pushrules/global/', async (ctx, auth) => {
    ctx.body = (await rules.ruleset(auth.userId)).global;
  });
  r.authed('get', '/pushrules/global/:kind/', async (ctx, auth) => {
    const kind = kindOf(ctx);
    ctx.body = (await rules.ruleset(auth.userId)).global[kind];
  });
  r.authed('get', '/pushrules/global/:kind/:ruleId', async (ctx, auth) => {
    const kind = kindOf(ctx);
    ctx.body = await wrap(async () => getRule(auth.userId, await rules.userRules(auth.userId), kind, param(ctx, 'ruleId')));
  });
  r.authed('put', '/pushrules/global/:kind/:ruleId', async (ctx, auth) => {
    const kind = kindOf(ctx);
    const position = { before: queryString(ctx, 'before'), after: queryString(ctx, 'after') };
    await wrap(() => rules.update(auth.userId, (u) => addRule(u, kind, param(ctx, 'ruleId'), body(ctx), position)));
    ctx.body = {};
  });
  r.authed('delete', '/pushrules/global/:kind/:ruleId', async (ctx, auth) => {
    const kind = kindOf(ctx);
    await wrap(() => rules.update(auth.userId, (u) => deleteRule(u, kind, param(ctx, 'ruleId'))));
    ctx.body = {};
  });
  for (const attr of ['enabled', 'actions'] as const) {
    r.authed('get', `/pushrules/global/:kind/:ruleId/${attr}`, async (ctx, auth) => {
      const kind = kindOf(ctx);
      const rule = await wrap(async () => getRule(auth.userId, await rules.userRules(auth.userId), kind, param(ctx, 'ruleId')));
      ctx.body = { [attr]: rule[attr] };
    });
    r.authed('put', `/pushrules/global/:kind/:ruleId/${attr}`, async (ctx, auth) => {
      const kind = kindOf(ctx);
      const value = body(ctx)[attr];
      await wrap(() =>
        rules.update(auth.userId, (u) => (attr === 'enabled' ? setEnabled(u, kind, param(ctx, 'ruleId'), value) : setActions(u, kind, param(ctx, 'ruleId'), value))),
      );
      ctx.body = {};
    });
  }
  // Malformed rule paths (spec: 400): unknown scopes, a missing or empty rule ID, unknown
  // attributes. Registered last, so the well-formed routes above win.
  const malformed = (why: string) => async () => {
    throw new MatrixError('M_INVALID_PARAM', why);
  };
  // Scopes and kinds are read with a trailing slash (/pushrules/global/room/); without it the
  // path names no rule.
  r.authed('get', '/pushrules/:scope', malformed('A push rule scope is read as /pushrules/global/'));
  r.authed('get', '/pushrules/:scope/:kind', malformed('A push rule kind is read as /pushrules/global/{kind}/'));
  r.authed('get', '/pushrules/:scope/', malformed('Unknown push rule scope: only global exists'));
  r.authed('get', '/pushrules/:scope/:kind/', malformed('Unknown push rule scope: only global exists'));
  r.authed('get', '/pushrules/:scope/:kind/:ruleId/:attr', malformed('Unknown push rule attribute: enabled or actions'));
  r.authed('put', '/pushrules/', malformed('A push rule path needs a scope, a kind and a rule ID'));
  r.authed('put', '/pushrules/:scope', malformed('A push rule path needs a kind and a rule ID'));
  r.authed('put', '/pushrules/:scope/:kind', malformed('A push rule path needs a rule ID'));
  r.authed('put', '/pushrules/:scope/:kind/:ruleId', malformed('Unknown push rule scope: only global exists'));
  r.authed('put', '/pushrules/:scope/:kind/:ruleId/:attr', malformed('Unknown push rule attribute: enabled or actions'));
}

function kindOf(ctx: Ctx) {
  const kind = param(ctx, 'kind');
  if (!isPushRuleKind(kind)) throw new MatrixError('M_INVALID_PARAM', `Unknown rule kind ${kind}`);
  return kind;
}

async function wrap<T>(f: () => Promise<T> | T): Promise<T> {
  try {
    return await f();
  } catch (err) {
    if (err instanceof PushRuleError) throw new MatrixError(err.errcode as Errcode, err.message);
    throw err;
  }
}
