// The application's Worker: its own routes, and chatfn's under /chat/ through the service
// binding (no public hop: the request goes from this Worker to chatfn's in the same process).
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === '/chat' || url.pathname.startsWith('/chat/')) {
      const forwarded = new URL(url.pathname.slice('/chat'.length) || '/', url);
      forwarded.search = url.search;
      return env.CHATFN.fetch(new Request(forwarded, request));
    }
    return Response.json({ app: 'chat-app', path: url.pathname });
  },
};
