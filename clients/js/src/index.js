// The kefu JavaScript client: ES modules, no build step. Types: index.d.ts. See README.md.
export { Client, decodeSecret, isStaffChannel, newConversationId, staffChannel } from "./client.js";
export { webSocketTransport } from "./transport.js";
export { ContentType } from "./frames.js";
export {
  AuthFailed, ClientClosed, ConnectError, ConnectTimeout, ConnectionLost, CredentialsRefused, ErrorCode, KefuError,
  NoCommonSuite, ProtocolError, RequestRefused, SendRefused, SendTimeout, ServerBusy, ServerNotTrusted, Timeout,
} from "./errors.js"; // prettier-ignore
