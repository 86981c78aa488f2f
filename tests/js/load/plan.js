// How big the load test is, in one place: the test runs it, and scripts/lambda-e2e.sh asks it how
// many chats to start agent-turn instances for (`node load/plan.js` prints the number of chats).
//
// Hosts: the local server (default 1,000 chats), the Lambda functions under cargo lambda watch
// (default 100 chats: at 200, 400 debug-build instances and the emulator on two cores queued
// requests for over 30 s whatever the functions did) or the Worker (1,000).
// CHATFN_LOAD_CHATS sets the number of chats; CHATFN_SOAK=1 makes it a soak: more turns per chat
// and five times the chats.

import { fileURLToPath } from 'node:url';

export function loadPlan(env = process.env) {
  const soak = env.CHATFN_SOAK === '1';
  const onLambda = Boolean(env.CHATFN_LAMBDA_URL) || env.CHATFN_LOAD_HOST === 'lambda';
  const chats = Number(env.CHATFN_LOAD_CHATS ?? (onLambda ? 100 : 1000)) * (soak ? 5 : 1);
  return { soak, onLambda, chats, rounds: soak ? 5 : 1 };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(loadPlan().chats);
}
