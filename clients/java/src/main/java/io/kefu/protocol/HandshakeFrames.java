package io.kefu.protocol;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * Byte-level encoding and parsing of the frames the connection core handles itself (spec/PROTOCOL.md sections 3.3,
 * 4.6-4.9, 5.2-5.6, 6.4): the handshake frames, NEW_TICKET, KEY_UPDATE, and the code and reason of ERROR, CLOSE
 * and GOAWAY. The handshake works on these bytes directly because its proofs cover exact body prefixes.
 *
 * <p>This overlaps with {@link FrameCodec} (written at the same time by another hand); application frames go through
 * FrameCodec. Package-private; stateless apart from each {@link Writer} and {@link Reader} object, which are
 * confined to one thread.
 */
final class HandshakeFrames {
    private HandshakeFrames() {}

    static final int HEADER_LENGTH = 12;
    static final int CLIENT_HELLO = 0x01;
    static final int SERVER_HELLO = 0x02;
    static final int SERVER_FINISHED = 0x03;
    static final int CLIENT_FINISHED = 0x04;
    static final int NEW_TICKET = 0x05;
    static final int KEY_UPDATE = 0x06;
    static final int RECORD = 0x0F;
    static final int PING = 0x20;
    static final int PONG = 0x21;
    static final int ERROR = 0x30;
    static final int GOAWAY = 0x31;
    static final int CLOSE = 0x32;

    /** A frame body under construction. */
    static final class Writer {
        private final ByteArrayOutputStream out = new ByteArrayOutputStream();

        Writer u8(int v) {
            out.write(v);
            return this;
        }

        Writer u16(int v) {
            out.write(v >>> 8);
            out.write(v);
            return this;
        }

        Writer u32(long v) {
            u16((int) (v >>> 16) & 0xFFFF);
            return u16((int) v & 0xFFFF);
        }

        Writer u64(long v) {
            u32(v >>> 32);
            return u32(v & 0xFFFFFFFFL);
        }

        Writer raw(byte[] b) {
            out.writeBytes(b);
            return this;
        }

        Writer bytes8(byte[] b) {
            if (b.length > 0xFF) {
                throw new IllegalArgumentException("value longer than 255 bytes for a u8 length");
            }
            return u8(b.length).raw(b);
        }

        Writer bytes16(byte[] b) {
            if (b.length > 0xFFFF) {
                throw new IllegalArgumentException("value longer than 65535 bytes for a u16 length");
            }
            return u16(b.length).raw(b);
        }

        Writer str8(String s) {
            return bytes8(s.getBytes(StandardCharsets.UTF_8));
        }

        Writer str16(String s) {
            return bytes16(s.getBytes(StandardCharsets.UTF_8));
        }

        byte[] body() {
            return out.toByteArray();
        }

        /** The whole frame: header and this body. */
        byte[] frame(int type, int flags, long requestId) {
            byte[] body = out.toByteArray();
            byte[] f = new byte[HEADER_LENGTH + body.length];
            ByteBuffer.wrap(f).putInt(body.length).put((byte) 1).put((byte) type).putShort((short) flags)
                    .putInt((int) requestId).put(body);
            return f;
        }
    }

    /** A cursor over one frame body; every short read is MALFORMED_FRAME. */
    static final class Reader {
        private final byte[] buf;
        private int pos;
        private final int end;
        private final String what;

        Reader(byte[] buf, int off, int len, String what) {
            this.buf = buf;
            this.pos = off;
            this.end = off + len;
            this.what = what;
        }

        private void need(int n) throws ProtocolException {
            if (end - pos < n) {
                throw new ProtocolException(ErrorCode.MALFORMED_FRAME, what + " body does not parse");
            }
        }

        int u8() throws ProtocolException {
            need(1);
            return buf[pos++] & 0xFF;
        }

        int u16() throws ProtocolException {
            need(2);
            int v = ((buf[pos] & 0xFF) << 8) | (buf[pos + 1] & 0xFF);
            pos += 2;
            return v;
        }

        long u32() throws ProtocolException {
            return ((long) u16() << 16) | u16();
        }

        long u64() throws ProtocolException {
            return (u32() << 32) | u32();
        }

        byte[] fixed(int n) throws ProtocolException {
            need(n);
            byte[] b = java.util.Arrays.copyOfRange(buf, pos, pos + n);
            pos += n;
            return b;
        }

        byte[] bytes8() throws ProtocolException {
            return fixed(u8());
        }

        byte[] bytes16() throws ProtocolException {
            return fixed(u16());
        }

        String str16() throws ProtocolException {
            byte[] b = bytes16();
            try {
                return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(b)).toString();
            } catch (CharacterCodingException e) {
                throw new ProtocolException(ErrorCode.MALFORMED_FRAME, what + " text is not UTF-8");
            }
        }
    }

    // --- CLIENT_HELLO (5.2) -----------------------------------------------------------------------------------

    /** CLIENT_HELLO with the given binder (a 32-byte placeholder while the binder is computed). */
    static byte[] clientHello(byte[] random, List<Suite> suites, List<KeyShare> shares, long keepaliveMs,
            PskMode mode, byte[] ticket, long obfuscatedAge, byte[] binder) {
        Writer w = new Writer().raw(random).u8(suites.size());
        for (Suite s : suites) {
            w.u16(s.code());
        }
        w.u8(shares.size());
        for (KeyShare share : shares) {
            w.u16(share.suite().code()).bytes16(share.publicBytes());
        }
        w.u32(keepaliveMs).u8(mode.code()).bytes16(ticket).u32(obfuscatedAge).bytes8(binder);
        return w.frame(CLIENT_HELLO, 0, 0);
    }

    // --- SERVER_HELLO (5.3) -----------------------------------------------------------------------------------

    record ServerHello(byte[] random, int suite, byte[] keyShare, int pskAccepted, long keepaliveMs) {}

    static ServerHello serverHello(byte[] buf, int off, int len) throws ProtocolException {
        Reader r = new Reader(buf, off, len, "SERVER_HELLO");
        return new ServerHello(r.fixed(32), r.u16(), r.bytes16(), r.u8(), r.u32());
    }

    // --- SERVER_FINISHED (5.4) --------------------------------------------------------------------------------

    record ServerFinished(int keyType, byte[] publicKey, byte[] signature, byte[] verifyData) {}

    static ServerFinished serverFinished(byte[] buf, int off, int len) throws ProtocolException {
        Reader r = new Reader(buf, off, len, "SERVER_FINISHED");
        return new ServerFinished(r.u16(), r.bytes16(), r.bytes16(), r.bytes8());
    }

    /** SERVER_FINISHED body bytes the signature covers: {@code key_type || u16(p) || public_key}. */
    static byte[] serverSignedPrefix(int keyType, byte[] publicKey) {
        return new Writer().u16(keyType).bytes16(publicKey).body();
    }

    // --- CLIENT_FINISHED (5.5) --------------------------------------------------------------------------------

    /** CLIENT_FINISHED body bytes before {@code proof}: what the client's proof covers. */
    static byte[] clientProofPrefix(String appId, int authMode, int keyType, byte[] publicKey) {
        return new Writer().str8(appId).u8(authMode).u16(keyType).bytes16(publicKey).body();
    }

    static byte[] clientFinished(byte[] proofPrefix, byte[] proof, byte[] verifyData) {
        return new Writer().raw(proofPrefix).bytes16(proof).bytes8(verifyData).frame(CLIENT_FINISHED, 0, 0);
    }

    /** Length-prefixed bytes, as an {@code opaque<u16>} field is encoded. */
    static byte[] prefix16(byte[] value) {
        return new Writer().bytes16(value).body();
    }

    // --- NEW_TICKET (5.6) -------------------------------------------------------------------------------------

    record NewTicket(long lifetimeS, long ageAdd, byte[] nonce, byte[] ticket) {}

    static NewTicket newTicket(byte[] buf, int off, int len) throws ProtocolException {
        Reader r = new Reader(buf, off, len, "NEW_TICKET");
        return new NewTicket(r.u32(), r.u32(), r.bytes8(), r.bytes16());
    }

    // --- KEY_UPDATE (6.4), PING/PONG (4.6), ERROR (4.7), GOAWAY (4.8), CLOSE (4.9) ----------------------------

    static byte[] keyUpdate(boolean requestPeer) {
        return new Writer().u8(requestPeer ? 1 : 0).frame(KEY_UPDATE, 0, 0);
    }

    static int keyUpdateRequested(byte[] buf, int off, int len) throws ProtocolException {
        return new Reader(buf, off, len, "KEY_UPDATE").u8();
    }

    static long pingOpaque(byte[] buf, int off, int len) throws ProtocolException {
        return new Reader(buf, off, len, "PING").u64();
    }

    static byte[] ping(long opaque) {
        return new Writer().u64(opaque).frame(PING, 0, 0);
    }

    static byte[] pong(long opaque, long requestId) {
        return new Writer().u64(opaque).frame(PONG, 0, requestId);
    }

    static byte[] error(ErrorCode code, String reason) {
        return new Writer().u16(code.code()).str16(reason).frame(ERROR, 0, 0);
    }

    static byte[] close(ErrorCode code, String reason) {
        return new Writer().u16(code.code()).str16(reason).frame(CLOSE, 0, 0);
    }

    record CodeReason(int code, String reason) {}

    /** The code and reason of an ERROR or CLOSE body. */
    static CodeReason codeReason(byte[] buf, int off, int len, String what) throws ProtocolException {
        Reader r = new Reader(buf, off, len, what);
        return new CodeReason(r.u16(), r.str16());
    }

    /** The code and reason of a GOAWAY body. */
    static CodeReason goaway(byte[] buf, int off, int len) throws ProtocolException {
        Reader r = new Reader(buf, off, len, "GOAWAY");
        int code = r.u16();
        r.fixed(14);
        return new CodeReason(code, r.str16());
    }

    /** The largest body of a frame type outside a handshake state's own limits (section 3.4). */
    static long bodyLimit(int type) {
        return switch (type) {
            case CLIENT_HELLO, SERVER_HELLO -> 4096;
            case RECORD -> 1_048_604;
            default -> 1_048_576;
        };
    }
}
