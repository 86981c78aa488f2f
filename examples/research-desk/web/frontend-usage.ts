// How a frontend uses the generated types: `useChat<ResearchDeskMessage>(init)` (from
// @ai-sdk/react) takes the `ChatInit` checked here. The compiler checks that the parts and
// metadata the Rust agent writes have the shape the frontend reads.
import { DefaultChatTransport, type ChatInit } from 'ai';
import type { ResearchDeskMessage, Source } from './research-desk';

export const init: ChatInit<ResearchDeskMessage> = {
  id: 'research-1',
  transport: new DefaultChatTransport<ResearchDeskMessage>({ api: 'http://127.0.0.1:8787/api/chat' }),
  onData: (part) => {
    if (part.type === 'data-source') console.log(part.data.title, part.data.url);
  },
};

export function sourcesOf(message: ResearchDeskMessage): Source[] {
  return message.parts.flatMap((part) => (part.type === 'data-source' ? [part.data] : []));
}

export function citedSources(message: ResearchDeskMessage): number {
  return message.metadata?.citedSources ?? 0;
}

// A part the agent never writes does not type-check.
// @ts-expect-error `data-weather` is not one of the desk's data parts
export const notADeskPart: ResearchDeskMessage['parts'][number] = { type: 'data-weather', data: {} };
