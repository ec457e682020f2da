package io.kefu.protocol;

/**
 * The 12-byte frame header (spec/PROTOCOL.md section 3.1): {@code length u32 | version u8 | type u8 | flags u16 |
 * request_id u32}, big-endian. {@link FrameCodec#readHeader(byte[], int)} reads one without judging it;
 * {@link FrameCodec#checkHeader(FrameHeader, int[])} judges it before any of the body is buffered.
 *
 * <p>Thread-safety: immutable.
 *
 * @param length the body length in bytes ({@code u32}; may exceed every limit, so it is a {@code long})
 * @param version the protocol version byte; 1 is the only valid value
 * @param type the frame type byte, 0 to 255 (see {@link FrameType#of(int)})
 * @param flags the flag bits ({@code u16}, section 3.2)
 * @param requestId the request id ({@code u32})
 */
public record FrameHeader(long length, int version, int type, int flags, long requestId) {}
