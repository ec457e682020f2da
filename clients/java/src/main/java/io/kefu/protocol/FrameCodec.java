package io.kefu.protocol;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;

/**
 * Encodes and decodes whole frames: the 12-byte header and the body (spec/PROTOCOL.md section 3).
 *
 * <p>Decoding judges the header before the body, in the order of section 3.1: a version other than 1 is
 * UNSUPPORTED_VERSION, a length above the type's limit (section 3.4) FRAME_TOO_LARGE; then the type is classified
 * (an unknown critical type is UNKNOWN_FRAME_TYPE, an unknown ignorable one gives {@link Frame.Unknown}) and the
 * body parsed (MALFORMED_FRAME if it does not fit its structure; bytes after the last known field are ignored,
 * section 3.5). Every failure is a {@link ProtocolException} with the code the spec names, never another exception
 * type, and no allocation is ever sized by a length field before the bytes it counts are known to be there.
 *
 * <p>Encoding refuses, with {@link IllegalArgumentException}, a value that does not fit its field and a body above
 * its type's limit (section 3.3): the peer would fail with MALFORMED_FRAME or FRAME_TOO_LARGE.
 *
 * <p>The body structures themselves are generated from the Python declarations ({@code FrameBodies}, by
 * spec/gen_java_frames.py).
 *
 * <p>Thread-safety: stateless; every method may be called from any thread.
 */
public final class FrameCodec {
    /** Section 3.1: the header's size. */
    public static final int HEADER_LEN = 12;

    /** The only protocol version this implementation speaks (header byte 4). */
    public static final int VERSION = 1;

    /**
     * Largest body of any frame but CLIENT_HELLO, SERVER_HELLO and RECORD, 1 MiB (section 8): room for any chat
     * message, and a bound on what a peer can make the other buffer for one incomplete frame.
     */
    public static final int MAX_BODY = 1 << 20;

    /** Largest CLIENT_HELLO or SERVER_HELLO body (section 8): real ones are under 400 bytes. */
    public static final int MAX_HANDSHAKE_BODY = 4096;

    /** Largest record plaintext: one maximal frame and its header, so every frame fits in one record. */
    public static final int MAX_RECORD_PLAINTEXT = MAX_BODY + HEADER_LEN;

    /** Every suite's AEAD tag length (section 6.1). */
    public static final int TAG_LEN = 16;

    /** Largest RECORD body: the largest plaintext and the tag. */
    public static final int MAX_RECORD_BODY = MAX_RECORD_PLAINTEXT + TAG_LEN;

    /**
     * A {@code limits} entry (see {@link #checkHeader(FrameHeader, int[])}) for a type that is refused from its
     * header alone with UNEXPECTED_FRAME, because the receiver's state does not accept it (section 8).
     */
    public static final int NOT_ACCEPTED = -1;

    /** Flag DUPLICATE of SEND_ACK (section 3.2). */
    public static final int FLAG_DUPLICATE = 0x0001;

    /** Flag REDELIVERY of DELIVER (section 3.2). */
    public static final int FLAG_REDELIVERY = 0x0001;

    private static final int[] BODY_LIMITS = new int[256];

    static {
        for (int t = 0; t < 256; t++) {
            BODY_LIMITS[t] = bodyLimit(t);
        }
    }

    private FrameCodec() {}

    /**
     * The body limit of a frame type (section 3.4): 4096 for CLIENT_HELLO and SERVER_HELLO, {@link #MAX_RECORD_BODY}
     * for RECORD, {@link #MAX_BODY} for every other code, known or not.
     *
     * @param type the type byte, 0 to 255
     * @return the largest body length the header may declare
     */
    public static int bodyLimit(int type) {
        if (type == FrameType.CLIENT_HELLO.code() || type == FrameType.SERVER_HELLO.code()) {
            return MAX_HANDSHAKE_BODY;
        }
        return type == FrameType.RECORD.code() ? MAX_RECORD_BODY : MAX_BODY;
    }

    /**
     * A fresh copy of the default limits table: index = type byte, value = {@link #bodyLimit(int)}. A connection
     * narrows its copy per state (for example {@link #NOT_ACCEPTED} for the types its state refuses).
     *
     * @return a new array of 256 limits
     */
    public static int[] defaultLimits() {
        return BODY_LIMITS.clone();
    }

    // --- headers -------------------------------------------------------------------------------------------

    /**
     * Reads a header without judging it.
     *
     * @param buf the bytes
     * @param off where the header starts; {@code buf} must hold {@link #HEADER_LEN} bytes from there
     * @return the header's fields
     * @throws IndexOutOfBoundsException if fewer than 12 bytes are there (a caller's bug: wait for them)
     */
    public static FrameHeader readHeader(byte[] buf, int off) {
        if (off < 0 || buf.length - off < HEADER_LEN) {
            throw new IndexOutOfBoundsException("a header needs " + HEADER_LEN + " bytes");
        }
        long length = be(buf, off, 4);
        int version = buf[off + 4] & 0xFF;
        int type = buf[off + 5] & 0xFF;
        int flags = (int) be(buf, off + 6, 2);
        long requestId = be(buf, off + 8, 4);
        return new FrameHeader(length, version, type, flags, requestId);
    }

    private static long be(byte[] buf, int off, int n) {
        long v = 0;
        for (int i = 0; i < n; i++) {
            v = v << 8 | (buf[off + i] & 0xFF);
        }
        return v;
    }

    /**
     * Judges a header against the default limits (section 3.1 steps 1 and 2).
     *
     * @param header the header
     * @throws ProtocolException UNSUPPORTED_VERSION or FRAME_TOO_LARGE
     */
    public static void checkHeader(FrameHeader header) throws ProtocolException {
        checkHeader(header, BODY_LIMITS);
    }

    /**
     * Judges a header against a limits table, before any of the body is buffered (sections 3.1 and 8): a version
     * other than 1 is UNSUPPORTED_VERSION; a type whose limit is {@link #NOT_ACCEPTED} is UNEXPECTED_FRAME; a
     * length above the type's limit is FRAME_TOO_LARGE.
     *
     * @param header the header
     * @param limits 256 entries, indexed by type byte: the largest body accepted, or {@link #NOT_ACCEPTED}
     * @throws ProtocolException as above
     */
    public static void checkHeader(FrameHeader header, int[] limits) throws ProtocolException {
        if (header.version() != VERSION) {
            throw new ProtocolException(ErrorCode.UNSUPPORTED_VERSION, "version " + header.version());
        }
        int limit = limits[header.type()];
        if (limit == NOT_ACCEPTED) {
            throw new ProtocolException(
                    ErrorCode.UNEXPECTED_FRAME, String.format("type 0x%02x not accepted here", header.type()));
        }
        if (header.length() > limit) {
            throw new ProtocolException(
                    ErrorCode.FRAME_TOO_LARGE,
                    String.format("type 0x%02x declares %d bytes", header.type(), header.length()));
        }
    }

    /**
     * Encodes a header.
     *
     * @param type the type byte, 0 to 255
     * @param flags the flags, 0 to 65535
     * @param requestId the request id, 0 to 2^32 - 1
     * @param bodyLength the body length, at least 0
     * @return 12 bytes
     * @throws IllegalArgumentException if a value does not fit its field
     */
    public static byte[] encodeHeader(int type, int flags, long requestId, int bodyLength) {
        WireWriter w = new WireWriter(HEADER_LEN);
        writeHeader(w, type, flags, requestId, bodyLength);
        return w.toByteArray();
    }

    private static void writeHeader(WireWriter w, int type, int flags, long requestId, long bodyLength) {
        w.u32(bodyLength, "length");
        w.u8(VERSION, "version");
        w.u8(type, "type");
        w.u16(flags, "flags");
        w.u32(requestId, "request_id");
    }

    // --- encoding ------------------------------------------------------------------------------------------

    /**
     * Encodes a whole frame: header and body.
     *
     * @param frame the frame
     * @return a new array holding exactly the frame
     * @throws IllegalArgumentException if a value does not fit its field or the body exceeds its type's limit
     */
    public static byte[] encode(Frame frame) {
        WireWriter w = new WireWriter(64);
        writeHeader(w, frame.typeCode(), frame.flags(), frame.requestId(), 0);
        writeBody(frame, w);
        int bodyLength = w.length() - HEADER_LEN;
        if (bodyLength > bodyLimit(frame.typeCode())) {
            throw new IllegalArgumentException(
                    frame.getClass().getSimpleName() + " body of " + bodyLength + " bytes exceeds its limit of "
                            + bodyLimit(frame.typeCode()));
        }
        byte[] out = w.toByteArray();
        for (int i = 0; i < 4; i++) {
            out[i] = (byte) (bodyLength >>> (24 - 8 * i));
        }
        return out;
    }

    /**
     * Encodes a frame's body alone (for example a prefix covered by a signature or MAC, section 5).
     *
     * @param frame the frame
     * @return the body bytes
     * @throws IllegalArgumentException if a value does not fit its field
     */
    public static byte[] encodeBody(Frame frame) {
        WireWriter w = new WireWriter(64);
        writeBody(frame, w);
        return w.toByteArray();
    }

    private static void writeBody(Frame frame, WireWriter w) {
        if (frame instanceof Frame.Record r) {
            w.raw(r.body(), 0, r.body().length);
        } else if (frame instanceof Frame.Unknown u) {
            w.raw(u.body(), 0, u.body().length);
        } else {
            FrameBodies.write(frame, w);
        }
    }

    // --- decoding ------------------------------------------------------------------------------------------

    /**
     * Decodes exactly one whole frame from {@code buf[off, off + len)}, judging the header first (section 3.1).
     *
     * @param buf the bytes; not modified (the frame's byte arrays are copies)
     * @param off where the frame starts
     * @param len the frame's length, header included: exactly 12 + the header's {@code length}
     * @return the frame: a RECORD as {@link Frame.Record}, an unknown ignorable type as {@link Frame.Unknown}
     * @throws ProtocolException TRUNCATED when {@code len} ends before the header or the declared body does;
     *     UNSUPPORTED_VERSION; FRAME_TOO_LARGE; UNKNOWN_FRAME_TYPE; MALFORMED_FRAME when the body does not parse
     *     or {@code len} runs past the declared body
     * @throws IndexOutOfBoundsException if {@code off} and {@code len} do not lie within {@code buf}
     */
    public static Frame decode(byte[] buf, int off, int len) throws ProtocolException {
        if (off < 0 || len < 0 || off > buf.length - len) {
            throw new IndexOutOfBoundsException("off " + off + ", len " + len + ", buffer " + buf.length);
        }
        if (len < HEADER_LEN) {
            throw new ProtocolException(ErrorCode.TRUNCATED, "frame ends inside its header (" + len + " bytes)");
        }
        FrameHeader h = readHeader(buf, off);
        checkHeader(h);
        if (len - HEADER_LEN < h.length()) {
            throw new ProtocolException(ErrorCode.TRUNCATED,
                    "frame ends after " + (len - HEADER_LEN) + " of " + h.length() + " body bytes");
        }
        if (len - HEADER_LEN > h.length()) {
            throw new ProtocolException(
                    ErrorCode.MALFORMED_FRAME, (len - HEADER_LEN - h.length()) + " bytes after the frame");
        }
        return decodeBody(h.type(), h.flags(), h.requestId(), buf, off + HEADER_LEN, (int) h.length());
    }

    /**
     * Decodes exactly one whole frame held by an array.
     *
     * @param frame the frame's bytes
     * @return the frame
     * @throws ProtocolException as {@link #decode(byte[], int, int)}
     */
    public static Frame decode(byte[] frame) throws ProtocolException {
        return decode(frame, 0, frame.length);
    }

    /**
     * Decodes a body whose header has been read and judged (section 3.1 steps 4 and 5).
     *
     * @param type the type byte
     * @param flags the header's flags
     * @param requestId the header's request id
     * @param buf the bytes; not modified
     * @param off where the body starts
     * @param len the body's length
     * @return the frame: a RECORD as {@link Frame.Record}, an unknown ignorable type as {@link Frame.Unknown}
     * @throws ProtocolException UNKNOWN_FRAME_TYPE for an unknown critical type, MALFORMED_FRAME for a body that
     *     does not fit its structure
     */
    public static Frame decodeBody(int type, int flags, long requestId, byte[] buf, int off, int len)
            throws ProtocolException {
        FrameType known = FrameType.of(type).orElse(null);
        if (known == null) {
            if (FrameType.isIgnorable(type)) {
                return new Frame.Unknown(requestId, flags, type, Arrays.copyOfRange(buf, off, off + len));
            }
            throw new ProtocolException(ErrorCode.UNKNOWN_FRAME_TYPE, String.format("frame type 0x%02x", type));
        }
        if (known == FrameType.RECORD) {
            return new Frame.Record(requestId, flags, Arrays.copyOfRange(buf, off, off + len));
        }
        WireReader r = new WireReader(buf, off, off + len, known.name());
        return FrameBodies.read(known, requestId, flags, r);
    }

    /**
     * One frame of a record's plaintext and where its encoding lies (the handshake transcript needs the exact
     * bytes of SERVER_FINISHED and CLIENT_FINISHED, section 5.1).
     *
     * <p>Thread-safety: immutable.
     *
     * @param frame the frame; {@link Frame.Unknown} for an unknown ignorable type, which the receiver skips
     * @param offset where its header starts in the buffer given to {@link #decodeInner(byte[], int, int)}
     * @param length its whole length, header included
     */
    public record InnerFrame(Frame frame, int offset, int length) {}

    /**
     * Splits and decodes a record's plaintext: one or more whole inner frames (section 6.3). Each header is judged
     * against the default limits as in section 3.1, so an inner frame is never larger than {@link #MAX_BODY}.
     *
     * @param plaintext the bytes; not modified
     * @param off where the plaintext starts
     * @param len its length
     * @return the frames in order, never empty
     * @throws ProtocolException RECORD_FRAGMENT when the plaintext is empty, ends inside a frame, or holds a
     *     RECORD; otherwise as {@link #decode(byte[], int, int)}
     */
    public static List<InnerFrame> decodeInner(byte[] plaintext, int off, int len) throws ProtocolException {
        if (off < 0 || len < 0 || off > plaintext.length - len) {
            throw new IndexOutOfBoundsException("off " + off + ", len " + len + ", buffer " + plaintext.length);
        }
        List<InnerFrame> out = new ArrayList<>();
        int pos = off;
        int end = off + len;
        while (end - pos >= HEADER_LEN) {
            FrameHeader h = readHeader(plaintext, pos);
            checkHeader(h);
            if (end - pos - HEADER_LEN < h.length()) {
                break;
            }
            if (h.type() == FrameType.RECORD.code()) {
                throw new ProtocolException(ErrorCode.RECORD_FRAGMENT, "RECORD inside a record");
            }
            int frameLen = HEADER_LEN + (int) h.length();
            Frame f = decodeBody(h.type(), h.flags(), h.requestId(), plaintext, pos + HEADER_LEN, (int) h.length());
            out.add(new InnerFrame(f, pos, frameLen));
            pos += frameLen;
        }
        if (pos != end || out.isEmpty()) {
            throw new ProtocolException(ErrorCode.RECORD_FRAGMENT, "record ends inside a frame or is empty");
        }
        return Collections.unmodifiableList(out);
    }
}
