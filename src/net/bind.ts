/**
 * Binding the WebSocket port, plain TCP or TLS. The app binds both servers' ports before it
 * builds either, so each is built knowing both addresses.
 *
 * @module
 */

/** Where the WebSocket server listens; {@linkcode bindWebSocket} binds it. */
export interface BindOptions {
  /** Address to bind. */
  hostname: string;
  /** Port to bind; 0 picks a free one. */
  port: number;
  /** PEM certificate and key: accept TLS (wss://) instead of plain TCP. */
  tls?: { cert: string; key: string };
}

/**
 * Binds the WebSocket port (TLS when `tls` is given). The app binds both servers' ports before
 * it builds either, so each is built knowing both addresses.
 */
export function bindWebSocket(options: BindOptions): Deno.Listener {
  const { hostname, port, tls } = options;
  return tls
    ? Deno.listenTls({ hostname, port, transport: "tcp", ...tls })
    : Deno.listen({ hostname, port, transport: "tcp" });
}
