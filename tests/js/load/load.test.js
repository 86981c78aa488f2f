// Load: many chats at once, each a few turns with a reload-resume and a stop, then the
// invariants every chat must end with (support/load-chats.js).
//
// How many chats and turns: load/plan.js (CHATFN_LOAD_CHATS, CHATFN_SOAK=1).

import { after } from 'node:test';
import { e2eSuite } from '../support/harness.js';
import { createSession, newChatId } from '../support/server.js';
import { lambdaInstances } from '../support/lambda-instances.js';
import {
  checkChat, loadModelScript, pool, reportSlowRequests, runChat,
} from '../support/load-chats.js';
import { loadPlan } from './plan.js';

const { soak, onLambda, chats: CHATS, rounds: ROUNDS } = loadPlan();

e2eSuite('load', (ctx, e2e) => {
  e2e(`${CHATS} chats at once, ${ROUNDS * 3 + 1} turns each with a resume and a stop`, async () => {
    ctx.mock.handle(loadModelScript);
    if (onLambda) {
      // scripts/lambda-e2e.sh starts two agent-turn instances per chat before this burst.
      console.log(`load: ${lambdaInstances('agent-turn').length} agent-turn instances`);
    }
    const started = Date.now();
    const watchdog = setInterval(reportSlowRequests, 10_000);
    after(() => clearInterval(watchdog));
    const chats = await pool(Array.from({ length: CHATS }, (_, i) => i), 100, async (i) => {
      const chatId = newChatId(`load-${i}`);
      return { chatId, token: await createSession(ctx.server, chatId) };
    });
    const seen = await Promise.all(chats.map(({ chatId, token }) => runChat(ctx.server, chatId, token, { rounds: ROUNDS })));
    const ran = Date.now() - started;
    await pool(chats, 50, ({ chatId, token }, i) => checkChat(ctx.server, chatId, token, seen[i]));
    const turns = seen.reduce((sum, chat) => sum + chat.length, 0);
    console.log(`load: ${CHATS} chats, ${turns} turns in ${(ran / 1000).toFixed(1)} s; invariants checked in ${((Date.now() - started - ran) / 1000).toFixed(1)} s`);
  }, { timeout: soak ? 3_600_000 : 600_000 });
});
