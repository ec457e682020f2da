// The WebSocket transport (spec section 15): binary messages of subprotocol kefu.v1, each carrying bytes of the kefu
// byte stream. The browser's WebSocket, or Node's global one (node --experimental-websocket on Node 20, default on 22).

export const SUBPROTOCOL = "kefu.v1";

/** A transport factory for `url`: opening resolves once the WebSocket is open, and rejects if it fails first. */
export function webSocketTransport(url, WebSocketImpl = globalThis.WebSocket) {
  if (!WebSocketImpl) throw new Error("no WebSocket implementation (Node 20: run with --experimental-websocket)");
  return () =>
    new Promise((resolve, reject) => {
      const ws = new WebSocketImpl(url, SUBPROTOCOL);
      ws.binaryType = "arraybuffer";
      let open = false;
      const transport = {
        onData: null,
        onClose: null,
        send(data) {
          if (ws.readyState === 1) ws.send(data);
        },
        close() {
          if (ws.readyState === 0 || ws.readyState === 1) ws.close(1000);
        },
      };
      ws.onopen = () => {
        if (ws.protocol !== SUBPROTOCOL) {
          ws.close(1002);
          reject(new Error(`the server did not accept subprotocol ${SUBPROTOCOL}`));
          return;
        }
        open = true;
        resolve(transport);
      };
      ws.onmessage = (event) => {
        if (typeof event.data === "string") {
          ws.close(1003); // text messages are not part of the protocol
          return;
        }
        transport.onData?.(new Uint8Array(event.data));
      };
      ws.onerror = () => {
        if (!open) reject(new Error(`cannot open ${url}`));
      };
      ws.onclose = (event) => {
        if (!open) reject(new Error(`cannot open ${url} (close ${event.code})`));
        transport.onClose?.(`websocket closed (${event.code}${event.reason ? " " + event.reason : ""})`);
        transport.onClose = null;
      };
    });
}
