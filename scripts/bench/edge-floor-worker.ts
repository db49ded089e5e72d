// The floor of `npm run bench:edge`: a Worker that only proxies every request to RUNNER_URL, run by the same
// `wrangler dev` as the edge. What the edge takes beyond this is what our code adds; the rest is wrangler
// dev's proxy hop and workerd's own fetch.
export default {
  async fetch(request: Request, env: { RUNNER_URL: string }): Promise<Response> {
    const url = new URL(request.url);
    return await fetch(new Request(`${env.RUNNER_URL}${url.pathname}${url.search}`, request));
  },
};
