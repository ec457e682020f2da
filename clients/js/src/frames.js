// GENERATED from kefu.protocol.frames and spec/errors.toml by spec/gen_js_frames.py: do not edit.
// The wire structures of spec/PROTOCOL.md section 3.3, as data: wire.js encodes and decodes them.

export const PROTOCOL_VERSION = 1;
export const HEADER_LEN = 12;
export const MAX_BODY = 1048576;
export const MAX_HANDSHAKE_BODY = 4096;
export const MAX_RECORD_PLAINTEXT = 1048588;
export const TAG_LEN = 16;
export const MAX_RECORD_BODY = 1048604;
export const IGNORABLE_TYPE_MIN = 128;
export const SERVICE_BASE = 4611686018427387904n;
export const STAFF_BIT = 9223372036854775808n;
export const SYSTEM_SENDER = "#kefu";

/** Frame type codes (section 3.4). */
export const FrameType = Object.freeze({
  CLIENT_HELLO: 0x01,
  SERVER_HELLO: 0x02,
  SERVER_FINISHED: 0x03,
  CLIENT_FINISHED: 0x04,
  NEW_TICKET: 0x05,
  KEY_UPDATE: 0x06,
  RECORD: 0x0F,
  SEND: 0x10,
  SEND_ACK: 0x11,
  DELIVER: 0x12,
  DELIVER_ACK: 0x13,
  SYNC: 0x14,
  SYNC_DONE: 0x15,
  PING: 0x20,
  PONG: 0x21,
  ERROR: 0x30,
  GOAWAY: 0x31,
  CLOSE: 0x32,
  AGENT_STATUS: 0x40,
  OPEN_CONVERSATION: 0x41,
  OPENED: 0x42,
  TRANSFER: 0x43,
  END_CONVERSATION: 0x44,
  WATCH: 0x45,
  DRAFT_DECISION: 0x46,
  SEARCH: 0x47,
  SEARCH_RESULT: 0x48,
  QUEUE_POSITION: 0x49,
  SENTIMENT: 0x4A,
  CONVERSATION_INFO: 0x4B,
  RESULT: 0x4F,
});

export const PskMode = Object.freeze({
  NONE: 0,
  PSK_ONLY: 1,
  PSK_WITH_ECDHE: 2,
});

export const AuthMode = Object.freeze({
  RESUMED: 0,
  APP_SECRET: 1,
  CLIENT_KEY: 2,
});

export const ContentType = Object.freeze({
  TEXT: 1,
  JSON: 2,
  BINARY: 3,
  EVENT: 4,
});

export const AgentState = Object.freeze({
  ONLINE: 1,
  AWAY: 2,
  BUSY: 3,
  OFFLINE: 4,
});

export const ConversationState = Object.freeze({
  WAITING: 1,
  ASSIGNED: 2,
  TRANSFERRED: 3,
  CLOSED: 4,
});

export const DraftAction = Object.freeze({
  APPROVE: 1,
  EDIT: 2,
  REJECT: 3,
});

/** Nested structures: fields in wire order, [name, kind]. */
export const STRUCTS = Object.freeze({
  KeyShareEntry: [
      ["suite", ["u", 2]],  // suite: u16
      ["key", ["var", 2]],  // key: opaque<u16>
    ],
  MetaEntry: [
      ["key", ["text", 1]],  // key: utf8<u8>
      ["value", ["var", 2]],  // value: opaque<u16>
    ],
  AckEntry: [
      ["conversationId", ["u", 8]],  // conversation_id: u64
      ["seq", ["u", 8]],  // seq: u64
    ],
  SearchHit: [
      ["conversationId", ["u", 8]],  // conversation_id: u64
      ["seq", ["u", 8]],  // seq: u64
      ["timestampMs", ["u", 8]],  // timestamp_ms: u64
      ["snippet", ["text", 2]],  // snippet: utf8<u16>
    ],
});

/** Frame bodies by type: the frame's name and its fields in wire order, [name, kind]. */
export const FRAME_BODIES = Object.freeze({
  0x01: { name: "CLIENT_HELLO", fields: [
      ["random", ["fixed", 32]],  // random: opaque[32]
      ["suites", ["seq", 1, ["u", 2]]],  // suites: u16 list<u8>
      ["keyShares", ["seq", 1, "KeyShareEntry"]],  // key_shares: KeyShareEntry list<u8>
      ["keepaliveMs", ["u", 4]],  // keepalive_ms: u32
      ["pskMode", ["u", 1]],  // psk_mode: u8
      ["ticket", ["var", 2]],  // ticket: opaque<u16>
      ["obfuscatedAge", ["u", 4]],  // obfuscated_age: u32
      ["binder", ["var", 1]],  // binder: opaque<u8>
    ] },
  0x02: { name: "SERVER_HELLO", fields: [
      ["random", ["fixed", 32]],  // random: opaque[32]
      ["suite", ["u", 2]],  // suite: u16
      ["keyShare", ["var", 2]],  // key_share: opaque<u16>
      ["pskAccepted", ["u", 1]],  // psk_accepted: u8
      ["keepaliveMs", ["u", 4]],  // keepalive_ms: u32
    ] },
  0x03: { name: "SERVER_FINISHED", fields: [
      ["keyType", ["u", 2]],  // key_type: u16
      ["publicKey", ["var", 2]],  // public_key: opaque<u16>
      ["signature", ["var", 2]],  // signature: opaque<u16>
      ["verifyData", ["var", 1]],  // verify_data: opaque<u8>
    ] },
  0x04: { name: "CLIENT_FINISHED", fields: [
      ["appId", ["text", 1]],  // app_id: utf8<u8>
      ["authMode", ["u", 1]],  // auth_mode: u8
      ["keyType", ["u", 2]],  // key_type: u16
      ["publicKey", ["var", 2]],  // public_key: opaque<u16>
      ["proof", ["var", 2]],  // proof: opaque<u16>
      ["verifyData", ["var", 1]],  // verify_data: opaque<u8>
    ] },
  0x05: { name: "NEW_TICKET", fields: [
      ["lifetimeS", ["u", 4]],  // lifetime_s: u32
      ["ageAdd", ["u", 4]],  // age_add: u32
      ["nonce", ["var", 1]],  // nonce: opaque<u8>
      ["ticket", ["var", 2]],  // ticket: opaque<u16>
    ] },
  0x06: { name: "KEY_UPDATE", fields: [
      ["updateRequested", ["u", 1]],  // update_requested: u8
    ] },
  0x10: { name: "SEND", fields: [
      ["clientMsgId", ["fixed", 16]],  // client_msg_id: opaque[16]
      ["conversationId", ["u", 8]],  // conversation_id: u64
      ["contentType", ["u", 2]],  // content_type: u16
      ["body", ["var", 4]],  // body: opaque<u32>
      ["metadata", ["seq", 1, "MetaEntry"]],  // metadata: MetaEntry list<u8>
    ] },
  0x11: { name: "SEND_ACK", fields: [
      ["clientMsgId", ["fixed", 16]],  // client_msg_id: opaque[16]
      ["status", ["u", 2]],  // status: u16
      ["serverMsgId", ["u", 8]],  // server_msg_id: u64
      ["conversationId", ["u", 8]],  // conversation_id: u64
      ["seq", ["u", 8]],  // seq: u64
      ["timestampMs", ["u", 8]],  // timestamp_ms: u64
    ] },
  0x12: { name: "DELIVER", fields: [
      ["conversationId", ["u", 8]],  // conversation_id: u64
      ["seq", ["u", 8]],  // seq: u64
      ["serverMsgId", ["u", 8]],  // server_msg_id: u64
      ["timestampMs", ["u", 8]],  // timestamp_ms: u64
      ["clientMsgId", ["fixed", 16]],  // client_msg_id: opaque[16]
      ["contentType", ["u", 2]],  // content_type: u16
      ["sender", ["text", 1]],  // sender: utf8<u8>
      ["body", ["var", 4]],  // body: opaque<u32>
      ["metadata", ["seq", 1, "MetaEntry"]],  // metadata: MetaEntry list<u8>
    ] },
  0x13: { name: "DELIVER_ACK", fields: [
      ["acks", ["seq", 2, "AckEntry"]],  // acks: AckEntry list<u16>
    ] },
  0x14: { name: "SYNC", fields: [
      ["conversationId", ["u", 8]],  // conversation_id: u64
      ["afterSeq", ["u", 8]],  // after_seq: u64
      ["untilSeq", ["u", 8]],  // until_seq: u64
      ["limit", ["u", 4]],  // limit: u32
    ] },
  0x15: { name: "SYNC_DONE", fields: [
      ["conversationId", ["u", 8]],  // conversation_id: u64
      ["lastSeq", ["u", 8]],  // last_seq: u64
      ["more", ["u", 1]],  // more: u8
    ] },
  0x20: { name: "PING", fields: [
      ["opaque", ["u", 8]],  // opaque: u64
    ] },
  0x21: { name: "PONG", fields: [
      ["opaque", ["u", 8]],  // opaque: u64
    ] },
  0x30: { name: "ERROR", fields: [
      ["code", ["u", 2]],  // code: u16
      ["reason", ["text", 2]],  // reason: utf8<u16>
    ] },
  0x31: { name: "GOAWAY", fields: [
      ["code", ["u", 2]],  // code: u16
      ["reconnectDelayMs", ["u", 4]],  // reconnect_delay_ms: u32
      ["backoffInitialMs", ["u", 4]],  // backoff_initial_ms: u32
      ["backoffMaxMs", ["u", 4]],  // backoff_max_ms: u32
      ["jitterPermille", ["u", 2]],  // jitter_permille: u16
      ["reason", ["text", 2]],  // reason: utf8<u16>
    ] },
  0x32: { name: "CLOSE", fields: [
      ["code", ["u", 2]],  // code: u16
      ["reason", ["text", 2]],  // reason: utf8<u16>
    ] },
  0x40: { name: "AGENT_STATUS", fields: [
      ["status", ["u", 1]],  // status: u8
    ] },
  0x41: { name: "OPEN_CONVERSATION", fields: [
      ["clientRef", ["fixed", 16]],  // client_ref: opaque[16]
      ["customer", ["text", 1]],  // customer: utf8<u8>
      ["group", ["text", 1]],  // group: utf8<u8>
      ["attributes", ["seq", 1, "MetaEntry"]],  // attributes: MetaEntry list<u8>
      ["firstMessage", ["var", 4]],  // first_message: opaque<u32>
    ] },
  0x42: { name: "OPENED", fields: [
      ["conversationId", ["u", 8]],  // conversation_id: u64
      ["state", ["u", 1]],  // state: u8
      ["group", ["text", 1]],  // group: utf8<u8>
      ["agent", ["text", 1]],  // agent: utf8<u8>
      ["position", ["u", 4]],  // position: u32
    ] },
  0x43: { name: "TRANSFER", fields: [
      ["conversationId", ["u", 8]],  // conversation_id: u64
      ["expectOwner", ["text", 1]],  // expect_owner: utf8<u8>
      ["toAgent", ["text", 1]],  // to_agent: utf8<u8>
      ["toGroup", ["text", 1]],  // to_group: utf8<u8>
      ["note", ["text", 2]],  // note: utf8<u16>
    ] },
  0x44: { name: "END_CONVERSATION", fields: [
      ["conversationId", ["u", 8]],  // conversation_id: u64
      ["reason", ["text", 2]],  // reason: utf8<u16>
    ] },
  0x45: { name: "WATCH", fields: [
      ["conversationId", ["u", 8]],  // conversation_id: u64
      ["on", ["u", 1]],  // on: u8
    ] },
  0x46: { name: "DRAFT_DECISION", fields: [
      ["conversationId", ["u", 8]],  // conversation_id: u64
      ["draftSeq", ["u", 8]],  // draft_seq: u64
      ["action", ["u", 1]],  // action: u8
      ["text", ["var", 4]],  // text: opaque<u32>
    ] },
  0x47: { name: "SEARCH", fields: [
      ["query", ["text", 2]],  // query: utf8<u16>
      ["limit", ["u", 2]],  // limit: u16
    ] },
  0x48: { name: "SEARCH_RESULT", fields: [
      ["hits", ["seq", 2, "SearchHit"]],  // hits: SearchHit list<u16>
      ["more", ["u", 1]],  // more: u8
    ] },
  0x49: { name: "QUEUE_POSITION", fields: [
      ["conversationId", ["u", 8]],  // conversation_id: u64
      ["group", ["text", 1]],  // group: utf8<u8>
      ["position", ["u", 4]],  // position: u32
      ["waiting", ["u", 4]],  // waiting: u32
    ] },
  0x4A: { name: "SENTIMENT", fields: [
      ["conversationId", ["u", 8]],  // conversation_id: u64
      ["seq", ["u", 8]],  // seq: u64
      ["scorePermille", ["u", 2]],  // score_permille: u16
    ] },
  0x4B: { name: "CONVERSATION_INFO", fields: [
      ["conversationId", ["u", 8]],  // conversation_id: u64
    ] },
  0x4F: { name: "RESULT", fields: [
      ["status", ["u", 2]],  // status: u16
      ["conversationId", ["u", 8]],  // conversation_id: u64
      ["seq", ["u", 8]],  // seq: u64
      ["detail", ["var", 4]],  // detail: opaque<u32>
    ] },
});

/** Wire error codes (spec/errors.toml, section 9): name -> [code, fatal]. */
export const ERROR_CODES = Object.freeze({
  OK: [0, false],
  MALFORMED_FRAME: [100, true],
  FRAME_TOO_LARGE: [101, true],
  UNSUPPORTED_VERSION: [102, true],
  UNKNOWN_FRAME_TYPE: [103, true],
  UNEXPECTED_FRAME: [104, true],
  RECORD_FRAGMENT: [105, true],
  TRUNCATED: [106, true],
  HANDSHAKE_FAILURE: [200, true],
  NO_COMMON_SUITE: [201, true],
  BAD_KEY_SHARE: [202, true],
  BAD_SIGNATURE: [203, true],
  SERVER_KEY_NOT_PINNED: [204, true],
  BAD_FINISHED: [205, true],
  AUTH_FAILED: [206, true],
  BAD_BINDER: [207, true],
  TICKET_REJECTED: [208, true],
  DOWNGRADE_DETECTED: [209, true],
  HANDSHAKE_TIMEOUT: [210, true],
  BAD_RECORD_MAC: [300, true],
  KEY_LIMIT_EXCEEDED: [301, true],
  CRYPTO_SELF_TEST_FAILED: [302, true],
  BAD_REQUEST: [400, false],
  UNAUTHORIZED: [401, false],
  FORBIDDEN: [403, false],
  NOT_FOUND: [404, false],
  CONFLICT: [409, false],
  MESSAGE_TOO_LARGE: [413, false],
  RATE_LIMITED: [429, false],
  INTERNAL_ERROR: [500, true],
  SHUTTING_DOWN: [503, false],
  KEEPALIVE_TIMEOUT: [504, true],
  OVERLOADED: [505, true],
  STORAGE_UNAVAILABLE: [507, false],
});
