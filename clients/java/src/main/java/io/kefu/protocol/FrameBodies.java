package io.kefu.protocol;

import java.util.List;

// GENERATED from kefu.protocol.frames by spec/gen_java_frames.py: do not edit.
/**
 * The body encoder and decoder of every frame type with a structure (section 3.3), generated from the
 * Python declarations so that the two cannot drift. {@link FrameCodec} is the public entry point.
 *
 * <p>Thread-safety: stateless.
 */
final class FrameBodies {
    private FrameBodies() {}

    /** Writes the body of {@code frame} (not a RECORD or an unknown frame) to {@code w}. */
    static void write(Frame frame, WireWriter w) {
        switch (frame.type()) {
            case CLIENT_HELLO -> {
                Frame.ClientHello f = (Frame.ClientHello) frame;
                w.fixed(f.random(), 32, "random");
                w.count(f.suites().size(), 1, "suites");
                for (int s : f.suites()) {
                    w.u16(s, "suites");
                }
                w.count(f.keyShares().size(), 1, "key_shares");
                for (KeyShareEntry k : f.keyShares()) {
                    w.u16(k.suite(), "suite");
                    w.bytes(k.key(), 2, "key");
                }
                w.u32(f.keepaliveMs(), "keepalive_ms");
                w.u8(f.pskMode(), "psk_mode");
                w.bytes(f.ticket(), 2, "ticket");
                w.u32(f.obfuscatedAge(), "obfuscated_age");
                w.bytes(f.binder(), 1, "binder");
            }
            case SERVER_HELLO -> {
                Frame.ServerHello f = (Frame.ServerHello) frame;
                w.fixed(f.random(), 32, "random");
                w.u16(f.suite(), "suite");
                w.bytes(f.keyShare(), 2, "key_share");
                w.u8(f.pskAccepted(), "psk_accepted");
                w.u32(f.keepaliveMs(), "keepalive_ms");
            }
            case SERVER_FINISHED -> {
                Frame.ServerFinished f = (Frame.ServerFinished) frame;
                w.u16(f.keyType(), "key_type");
                w.bytes(f.publicKey(), 2, "public_key");
                w.bytes(f.signature(), 2, "signature");
                w.bytes(f.verifyData(), 1, "verify_data");
            }
            case CLIENT_FINISHED -> {
                Frame.ClientFinished f = (Frame.ClientFinished) frame;
                w.text(f.appId(), 1, "app_id");
                w.u8(f.authMode(), "auth_mode");
                w.u16(f.keyType(), "key_type");
                w.bytes(f.publicKey(), 2, "public_key");
                w.bytes(f.proof(), 2, "proof");
                w.bytes(f.verifyData(), 1, "verify_data");
            }
            case NEW_TICKET -> {
                Frame.NewTicket f = (Frame.NewTicket) frame;
                w.u32(f.lifetimeS(), "lifetime_s");
                w.u32(f.ageAdd(), "age_add");
                w.bytes(f.nonce(), 1, "nonce");
                w.bytes(f.ticket(), 2, "ticket");
            }
            case KEY_UPDATE -> {
                Frame.KeyUpdate f = (Frame.KeyUpdate) frame;
                w.u8(f.updateRequested(), "update_requested");
            }
            case SEND -> {
                Frame.Send f = (Frame.Send) frame;
                w.fixed(f.clientMsgId(), 16, "client_msg_id");
                w.u64(f.conversationId(), "conversation_id");
                w.u16(f.contentType(), "content_type");
                w.bytes(f.body(), 4, "body");
                w.count(f.metadata().size(), 1, "metadata");
                for (MetaEntry m : f.metadata()) {
                    w.text(m.key(), 1, "key");
                    w.bytes(m.value(), 2, "value");
                }
            }
            case SEND_ACK -> {
                Frame.SendAck f = (Frame.SendAck) frame;
                w.fixed(f.clientMsgId(), 16, "client_msg_id");
                w.u16(f.status(), "status");
                w.u64(f.serverMsgId(), "server_msg_id");
                w.u64(f.conversationId(), "conversation_id");
                w.u64(f.seq(), "seq");
                w.u64(f.timestampMs(), "timestamp_ms");
            }
            case DELIVER -> {
                Frame.Deliver f = (Frame.Deliver) frame;
                w.u64(f.conversationId(), "conversation_id");
                w.u64(f.seq(), "seq");
                w.u64(f.serverMsgId(), "server_msg_id");
                w.u64(f.timestampMs(), "timestamp_ms");
                w.fixed(f.clientMsgId(), 16, "client_msg_id");
                w.u16(f.contentType(), "content_type");
                w.text(f.sender(), 1, "sender");
                w.bytes(f.body(), 4, "body");
                w.count(f.metadata().size(), 1, "metadata");
                for (MetaEntry m : f.metadata()) {
                    w.text(m.key(), 1, "key");
                    w.bytes(m.value(), 2, "value");
                }
            }
            case DELIVER_ACK -> {
                Frame.DeliverAck f = (Frame.DeliverAck) frame;
                w.count(f.acks().size(), 2, "acks");
                for (AckEntry a : f.acks()) {
                    w.u64(a.conversationId(), "conversation_id");
                    w.u64(a.seq(), "seq");
                }
            }
            case SYNC -> {
                Frame.Sync f = (Frame.Sync) frame;
                w.u64(f.conversationId(), "conversation_id");
                w.u64(f.afterSeq(), "after_seq");
                w.u64(f.untilSeq(), "until_seq");
                w.u32(f.limit(), "limit");
            }
            case SYNC_DONE -> {
                Frame.SyncDone f = (Frame.SyncDone) frame;
                w.u64(f.conversationId(), "conversation_id");
                w.u64(f.lastSeq(), "last_seq");
                w.u8(f.more(), "more");
            }
            case PING -> {
                Frame.Ping f = (Frame.Ping) frame;
                w.u64(f.opaque(), "opaque");
            }
            case PONG -> {
                Frame.Pong f = (Frame.Pong) frame;
                w.u64(f.opaque(), "opaque");
            }
            case ERROR -> {
                Frame.Error f = (Frame.Error) frame;
                w.u16(f.code(), "code");
                w.text(f.reason(), 2, "reason");
            }
            case GOAWAY -> {
                Frame.Goaway f = (Frame.Goaway) frame;
                w.u16(f.code(), "code");
                w.u32(f.reconnectDelayMs(), "reconnect_delay_ms");
                w.u32(f.backoffInitialMs(), "backoff_initial_ms");
                w.u32(f.backoffMaxMs(), "backoff_max_ms");
                w.u16(f.jitterPermille(), "jitter_permille");
                w.text(f.reason(), 2, "reason");
            }
            case CLOSE -> {
                Frame.Close f = (Frame.Close) frame;
                w.u16(f.code(), "code");
                w.text(f.reason(), 2, "reason");
            }
            case AGENT_STATUS -> {
                Frame.AgentStatus f = (Frame.AgentStatus) frame;
                w.u8(f.status(), "status");
            }
            case OPEN_CONVERSATION -> {
                Frame.OpenConversation f = (Frame.OpenConversation) frame;
                w.fixed(f.clientRef(), 16, "client_ref");
                w.text(f.customer(), 1, "customer");
                w.text(f.group(), 1, "group");
                w.count(f.attributes().size(), 1, "attributes");
                for (MetaEntry a : f.attributes()) {
                    w.text(a.key(), 1, "key");
                    w.bytes(a.value(), 2, "value");
                }
                w.bytes(f.firstMessage(), 4, "first_message");
            }
            case OPENED -> {
                Frame.Opened f = (Frame.Opened) frame;
                w.u64(f.conversationId(), "conversation_id");
                w.u8(f.state(), "state");
                w.text(f.group(), 1, "group");
                w.text(f.agent(), 1, "agent");
                w.u32(f.position(), "position");
            }
            case TRANSFER -> {
                Frame.Transfer f = (Frame.Transfer) frame;
                w.u64(f.conversationId(), "conversation_id");
                w.text(f.expectOwner(), 1, "expect_owner");
                w.text(f.toAgent(), 1, "to_agent");
                w.text(f.toGroup(), 1, "to_group");
                w.text(f.note(), 2, "note");
            }
            case END_CONVERSATION -> {
                Frame.EndConversation f = (Frame.EndConversation) frame;
                w.u64(f.conversationId(), "conversation_id");
                w.text(f.reason(), 2, "reason");
            }
            case WATCH -> {
                Frame.Watch f = (Frame.Watch) frame;
                w.u64(f.conversationId(), "conversation_id");
                w.u8(f.on(), "on");
            }
            case DRAFT_DECISION -> {
                Frame.DraftDecision f = (Frame.DraftDecision) frame;
                w.u64(f.conversationId(), "conversation_id");
                w.u64(f.draftSeq(), "draft_seq");
                w.u8(f.action(), "action");
                w.bytes(f.text(), 4, "text");
            }
            case SEARCH -> {
                Frame.Search f = (Frame.Search) frame;
                w.text(f.query(), 2, "query");
                w.u16(f.limit(), "limit");
            }
            case SEARCH_RESULT -> {
                Frame.SearchResult f = (Frame.SearchResult) frame;
                w.count(f.hits().size(), 2, "hits");
                for (SearchHit h : f.hits()) {
                    w.u64(h.conversationId(), "conversation_id");
                    w.u64(h.seq(), "seq");
                    w.u64(h.timestampMs(), "timestamp_ms");
                    w.text(h.snippet(), 2, "snippet");
                }
                w.u8(f.more(), "more");
            }
            case QUEUE_POSITION -> {
                Frame.QueuePosition f = (Frame.QueuePosition) frame;
                w.u64(f.conversationId(), "conversation_id");
                w.text(f.group(), 1, "group");
                w.u32(f.position(), "position");
                w.u32(f.waiting(), "waiting");
            }
            case SENTIMENT -> {
                Frame.Sentiment f = (Frame.Sentiment) frame;
                w.u64(f.conversationId(), "conversation_id");
                w.u64(f.seq(), "seq");
                w.u16(f.scorePermille(), "score_permille");
            }
            case CONVERSATION_INFO -> {
                Frame.ConversationInfo f = (Frame.ConversationInfo) frame;
                w.u64(f.conversationId(), "conversation_id");
            }
            case RESULT -> {
                Frame.Result f = (Frame.Result) frame;
                w.u16(f.status(), "status");
                w.u64(f.conversationId(), "conversation_id");
                w.u64(f.seq(), "seq");
                w.bytes(f.detail(), 4, "detail");
            }
            default -> throw new IllegalArgumentException("no body structure: " + frame.type());
        }
    }

    /**
     * Reads the body of a frame of {@code type} (not RECORD) from {@code r}; bytes after the last field are
     * left unread (section 3.5). MALFORMED_FRAME when the body does not fit the structure.
     */
    static Frame read(FrameType type, long requestId, int flags, WireReader r) throws ProtocolException {
        switch (type) {
            case CLIENT_HELLO: {
                byte[] random = r.fixed(32);
                int suitesCount = r.count(1);
                Integer[] suitesItems = new Integer[suitesCount];
                for (int i = 0; i < suitesCount; i++) {
                    suitesItems[i] = r.u16();
                }
                List<Integer> suites = List.of(suitesItems);
                int keySharesCount = r.count(1);
                KeyShareEntry[] keySharesItems = new KeyShareEntry[keySharesCount];
                for (int i = 0; i < keySharesCount; i++) {
                    keySharesItems[i] = new KeyShareEntry(r.u16(), r.bytes(2));
                }
                List<KeyShareEntry> keyShares = List.of(keySharesItems);
                long keepaliveMs = r.u32();
                int pskMode = r.u8();
                byte[] ticket = r.bytes(2);
                long obfuscatedAge = r.u32();
                byte[] binder = r.bytes(1);
                return new Frame.ClientHello(requestId, flags, random, suites, keyShares, keepaliveMs, pskMode,
                        ticket, obfuscatedAge, binder);
            }
            case SERVER_HELLO: {
                byte[] random = r.fixed(32);
                int suite = r.u16();
                byte[] keyShare = r.bytes(2);
                int pskAccepted = r.u8();
                long keepaliveMs = r.u32();
                return new Frame.ServerHello(requestId, flags, random, suite, keyShare, pskAccepted, keepaliveMs);
            }
            case SERVER_FINISHED: {
                int keyType = r.u16();
                byte[] publicKey = r.bytes(2);
                byte[] signature = r.bytes(2);
                byte[] verifyData = r.bytes(1);
                return new Frame.ServerFinished(requestId, flags, keyType, publicKey, signature, verifyData);
            }
            case CLIENT_FINISHED: {
                String appId = r.text(1);
                int authMode = r.u8();
                int keyType = r.u16();
                byte[] publicKey = r.bytes(2);
                byte[] proof = r.bytes(2);
                byte[] verifyData = r.bytes(1);
                return new Frame.ClientFinished(requestId, flags, appId, authMode, keyType, publicKey, proof,
                        verifyData);
            }
            case NEW_TICKET: {
                long lifetimeS = r.u32();
                long ageAdd = r.u32();
                byte[] nonce = r.bytes(1);
                byte[] ticket = r.bytes(2);
                return new Frame.NewTicket(requestId, flags, lifetimeS, ageAdd, nonce, ticket);
            }
            case KEY_UPDATE: {
                int updateRequested = r.u8();
                return new Frame.KeyUpdate(requestId, flags, updateRequested);
            }
            case SEND: {
                byte[] clientMsgId = r.fixed(16);
                long conversationId = r.u64();
                int contentType = r.u16();
                byte[] body = r.bytes(4);
                int metadataCount = r.count(1);
                MetaEntry[] metadataItems = new MetaEntry[metadataCount];
                for (int i = 0; i < metadataCount; i++) {
                    metadataItems[i] = new MetaEntry(r.text(1), r.bytes(2));
                }
                List<MetaEntry> metadata = List.of(metadataItems);
                return new Frame.Send(requestId, flags, clientMsgId, conversationId, contentType, body, metadata);
            }
            case SEND_ACK: {
                byte[] clientMsgId = r.fixed(16);
                int status = r.u16();
                long serverMsgId = r.u64();
                long conversationId = r.u64();
                long seq = r.u64();
                long timestampMs = r.u64();
                return new Frame.SendAck(requestId, flags, clientMsgId, status, serverMsgId, conversationId, seq,
                        timestampMs);
            }
            case DELIVER: {
                long conversationId = r.u64();
                long seq = r.u64();
                long serverMsgId = r.u64();
                long timestampMs = r.u64();
                byte[] clientMsgId = r.fixed(16);
                int contentType = r.u16();
                String sender = r.text(1);
                byte[] body = r.bytes(4);
                int metadataCount = r.count(1);
                MetaEntry[] metadataItems = new MetaEntry[metadataCount];
                for (int i = 0; i < metadataCount; i++) {
                    metadataItems[i] = new MetaEntry(r.text(1), r.bytes(2));
                }
                List<MetaEntry> metadata = List.of(metadataItems);
                return new Frame.Deliver(requestId, flags, conversationId, seq, serverMsgId, timestampMs, clientMsgId,
                        contentType, sender, body, metadata);
            }
            case DELIVER_ACK: {
                int acksCount = r.count(2);
                AckEntry[] acksItems = new AckEntry[acksCount];
                for (int i = 0; i < acksCount; i++) {
                    acksItems[i] = new AckEntry(r.u64(), r.u64());
                }
                List<AckEntry> acks = List.of(acksItems);
                return new Frame.DeliverAck(requestId, flags, acks);
            }
            case SYNC: {
                long conversationId = r.u64();
                long afterSeq = r.u64();
                long untilSeq = r.u64();
                long limit = r.u32();
                return new Frame.Sync(requestId, flags, conversationId, afterSeq, untilSeq, limit);
            }
            case SYNC_DONE: {
                long conversationId = r.u64();
                long lastSeq = r.u64();
                int more = r.u8();
                return new Frame.SyncDone(requestId, flags, conversationId, lastSeq, more);
            }
            case PING: {
                long opaque = r.u64();
                return new Frame.Ping(requestId, flags, opaque);
            }
            case PONG: {
                long opaque = r.u64();
                return new Frame.Pong(requestId, flags, opaque);
            }
            case ERROR: {
                int code = r.u16();
                String reason = r.text(2);
                return new Frame.Error(requestId, flags, code, reason);
            }
            case GOAWAY: {
                int code = r.u16();
                long reconnectDelayMs = r.u32();
                long backoffInitialMs = r.u32();
                long backoffMaxMs = r.u32();
                int jitterPermille = r.u16();
                String reason = r.text(2);
                return new Frame.Goaway(requestId, flags, code, reconnectDelayMs, backoffInitialMs, backoffMaxMs,
                        jitterPermille, reason);
            }
            case CLOSE: {
                int code = r.u16();
                String reason = r.text(2);
                return new Frame.Close(requestId, flags, code, reason);
            }
            case AGENT_STATUS: {
                int status = r.u8();
                return new Frame.AgentStatus(requestId, flags, status);
            }
            case OPEN_CONVERSATION: {
                byte[] clientRef = r.fixed(16);
                String customer = r.text(1);
                String group = r.text(1);
                int attributesCount = r.count(1);
                MetaEntry[] attributesItems = new MetaEntry[attributesCount];
                for (int i = 0; i < attributesCount; i++) {
                    attributesItems[i] = new MetaEntry(r.text(1), r.bytes(2));
                }
                List<MetaEntry> attributes = List.of(attributesItems);
                byte[] firstMessage = r.bytes(4);
                return new Frame.OpenConversation(requestId, flags, clientRef, customer, group, attributes,
                        firstMessage);
            }
            case OPENED: {
                long conversationId = r.u64();
                int state = r.u8();
                String group = r.text(1);
                String agent = r.text(1);
                long position = r.u32();
                return new Frame.Opened(requestId, flags, conversationId, state, group, agent, position);
            }
            case TRANSFER: {
                long conversationId = r.u64();
                String expectOwner = r.text(1);
                String toAgent = r.text(1);
                String toGroup = r.text(1);
                String note = r.text(2);
                return new Frame.Transfer(requestId, flags, conversationId, expectOwner, toAgent, toGroup, note);
            }
            case END_CONVERSATION: {
                long conversationId = r.u64();
                String reason = r.text(2);
                return new Frame.EndConversation(requestId, flags, conversationId, reason);
            }
            case WATCH: {
                long conversationId = r.u64();
                int on = r.u8();
                return new Frame.Watch(requestId, flags, conversationId, on);
            }
            case DRAFT_DECISION: {
                long conversationId = r.u64();
                long draftSeq = r.u64();
                int action = r.u8();
                byte[] text = r.bytes(4);
                return new Frame.DraftDecision(requestId, flags, conversationId, draftSeq, action, text);
            }
            case SEARCH: {
                String query = r.text(2);
                int limit = r.u16();
                return new Frame.Search(requestId, flags, query, limit);
            }
            case SEARCH_RESULT: {
                int hitsCount = r.count(2);
                SearchHit[] hitsItems = new SearchHit[hitsCount];
                for (int i = 0; i < hitsCount; i++) {
                    hitsItems[i] = new SearchHit(r.u64(), r.u64(), r.u64(), r.text(2));
                }
                List<SearchHit> hits = List.of(hitsItems);
                int more = r.u8();
                return new Frame.SearchResult(requestId, flags, hits, more);
            }
            case QUEUE_POSITION: {
                long conversationId = r.u64();
                String group = r.text(1);
                long position = r.u32();
                long waiting = r.u32();
                return new Frame.QueuePosition(requestId, flags, conversationId, group, position, waiting);
            }
            case SENTIMENT: {
                long conversationId = r.u64();
                long seq = r.u64();
                int scorePermille = r.u16();
                return new Frame.Sentiment(requestId, flags, conversationId, seq, scorePermille);
            }
            case CONVERSATION_INFO: {
                long conversationId = r.u64();
                return new Frame.ConversationInfo(requestId, flags, conversationId);
            }
            case RESULT: {
                int status = r.u16();
                long conversationId = r.u64();
                long seq = r.u64();
                byte[] detail = r.bytes(4);
                return new Frame.Result(requestId, flags, status, conversationId, seq, detail);
            }
            default:
                throw new IllegalArgumentException("no body structure: " + type);
        }
    }
}
