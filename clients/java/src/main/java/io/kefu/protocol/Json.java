package io.kefu.protocol;

import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A minimal, strict JSON reader (RFC 8259) and writer, for the JSON the protocol carries (the {@code detail} of
 * RESULT, the bodies of EVENT messages, spec/PROTOCOL.md section 13) and for the test vectors in
 * {@code spec/vectors/}.
 *
 * <p>Values map to Java as follows: an object to an unmodifiable {@code Map<String, Object>} keeping the order of
 * its members, an array to an unmodifiable {@code List<Object>}, a string to {@link String}, {@code true} and
 * {@code false} to {@link Boolean}, {@code null} to {@code null}, and a number to {@link Long} when it is an integer
 * (no fraction, no exponent) that fits in a {@code long}, to {@link BigInteger} when it is a larger integer (a
 * {@code u64} above 2^63 - 1 is parsed exactly), and to {@link Double} otherwise.
 *
 * <p>Strict means: exactly one value with only JSON whitespace around it; no trailing commas, comments, single
 * quotes, leading zeros, {@code NaN} or bare control characters in strings; no duplicate member names; no unpaired
 * surrogate escapes; nesting at most {@link #MAX_DEPTH} deep. Anything else is a {@link ParseException} naming the
 * offset, never another exception type.
 *
 * <p>Thread-safety: the class is stateless; every method may be called from any thread at any time. The returned
 * collections are unmodifiable and may be shared.
 */
public final class Json {
    /**
     * The deepest nesting of arrays and objects accepted. JSON from the server is a few levels deep; the bound keeps
     * a hostile document from exhausting the stack of the recursive parser.
     */
    public static final int MAX_DEPTH = 256;

    private Json() {}

    /**
     * Malformed JSON. Unchecked, so that callers that only read trusted files need no handler.
     *
     * <p>Thread-safety: immutable once constructed.
     */
    public static final class ParseException extends IllegalArgumentException {
        private static final long serialVersionUID = 1L;

        /** Where the parser stopped, in characters from the start of the text. */
        private final int offset;

        /**
         * A parse error at {@code offset}.
         *
         * @param message what was wrong
         * @param offset where, in characters from the start of the text
         */
        public ParseException(String message, int offset) {
            super(message + " at offset " + offset);
            this.offset = offset;
        }

        /**
         * Where the parser stopped.
         *
         * @return the offset, in characters from the start of the text
         */
        public int offset() {
            return offset;
        }
    }

    /**
     * Parses one JSON text.
     *
     * @param text the whole text
     * @return the value, as described in the class documentation
     * @throws ParseException if {@code text} is not exactly one strict JSON value
     */
    public static Object parse(String text) {
        Parser parser = new Parser(text);
        parser.skipWhitespace();
        Object value = parser.value(0);
        parser.skipWhitespace();
        if (parser.pos != text.length()) {
            throw new ParseException("unexpected data after the value", parser.pos);
        }
        return value;
    }

    /**
     * Parses one JSON text given as UTF-8 bytes, such as RESULT's {@code detail}.
     *
     * @param utf8 the bytes; not modified
     * @return the value, as described in the class documentation
     * @throws ParseException if the bytes are not valid UTF-8 (offset 0) or not exactly one strict JSON value
     */
    public static Object parse(byte[] utf8) {
        String text;
        try {
            text = StandardCharsets.UTF_8
                    .newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(utf8))
                    .toString();
        } catch (CharacterCodingException e) {
            throw new ParseException("not valid UTF-8", 0);
        }
        return parse(text);
    }

    /**
     * Parses a JSON text that must be an object, the common case for protocol details.
     *
     * @param text the whole text
     * @return its members, in document order
     * @throws ParseException if the text is not a strict JSON object
     */
    @SuppressWarnings("unchecked")
    public static Map<String, Object> parseObject(String text) {
        Object value = parse(text);
        if (!(value instanceof Map)) {
            throw new ParseException("expected an object", 0);
        }
        return (Map<String, Object>) value;
    }

    /**
     * Writes a value as compact JSON (no spaces), the inverse of {@link #parse(String)}: {@code Map} (keys are
     * turned into strings with {@code toString}), {@code List}, {@code String}, {@code Boolean}, {@code null}, and
     * the {@code Number}s {@code Long}, {@code Integer}, {@code Short}, {@code Byte}, {@code BigInteger} and finite
     * {@code Double} or {@code Float}. Non-ASCII characters are written as they are (the caller encodes as UTF-8).
     *
     * @param value the value
     * @return its JSON text
     * @throws IllegalArgumentException for another type, a non-finite number, or a string with an unpaired
     *     surrogate
     */
    public static String write(Object value) {
        StringBuilder out = new StringBuilder();
        writeTo(out, value, 0);
        return out.toString();
    }

    private static void writeTo(StringBuilder out, Object value, int depth) {
        if (depth > MAX_DEPTH) {
            throw new IllegalArgumentException("nested deeper than " + MAX_DEPTH);
        }
        if (value == null) {
            out.append("null");
        } else if (value instanceof String s) {
            writeString(out, s);
        } else if (value instanceof Boolean b) {
            out.append(b.booleanValue());
        } else if (value instanceof Long || value instanceof Integer || value instanceof Short
                || value instanceof Byte || value instanceof BigInteger) {
            out.append(value);
        } else if (value instanceof Double || value instanceof Float) {
            double d = ((Number) value).doubleValue();
            if (Double.isNaN(d) || Double.isInfinite(d)) {
                throw new IllegalArgumentException("JSON has no " + d);
            }
            out.append(d);
        } else if (value instanceof Map<?, ?> map) {
            out.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : map.entrySet()) {
                if (!first) {
                    out.append(',');
                }
                first = false;
                writeString(out, String.valueOf(e.getKey()));
                out.append(':');
                writeTo(out, e.getValue(), depth + 1);
            }
            out.append('}');
        } else if (value instanceof List<?> list) {
            out.append('[');
            for (int i = 0; i < list.size(); i++) {
                if (i > 0) {
                    out.append(',');
                }
                writeTo(out, list.get(i), depth + 1);
            }
            out.append(']');
        } else {
            throw new IllegalArgumentException("not a JSON value: " + value.getClass().getName());
        }
    }

    private static void writeString(StringBuilder out, String s) {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                case '\b' -> out.append("\\b");
                case '\f' -> out.append("\\f");
                default -> {
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else if (Character.isHighSurrogate(c)) {
                        if (i + 1 >= s.length() || !Character.isLowSurrogate(s.charAt(i + 1))) {
                            throw new IllegalArgumentException("unpaired surrogate at index " + i);
                        }
                        out.append(c).append(s.charAt(++i));
                    } else if (Character.isLowSurrogate(c)) {
                        throw new IllegalArgumentException("unpaired surrogate at index " + i);
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        out.append('"');
    }

    /** The recursive-descent parser over one text; one instance per call. */
    private static final class Parser {
        private final String text;
        private int pos;

        Parser(String text) {
            this.text = text;
        }

        ParseException error(String message) {
            return new ParseException(message, pos);
        }

        void skipWhitespace() {
            while (pos < text.length()) {
                char c = text.charAt(pos);
                if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                    return;
                }
                pos++;
            }
        }

        Object value(int depth) {
            if (pos >= text.length()) {
                throw error("unexpected end of text");
            }
            char c = text.charAt(pos);
            return switch (c) {
                case '{' -> object(depth + 1);
                case '[' -> array(depth + 1);
                case '"' -> string();
                case 't' -> literal("true", Boolean.TRUE);
                case 'f' -> literal("false", Boolean.FALSE);
                case 'n' -> literal("null", null);
                default -> {
                    if (c == '-' || (c >= '0' && c <= '9')) {
                        yield number();
                    }
                    throw error("unexpected character '" + c + "'");
                }
            };
        }

        Object literal(String word, Object value) {
            if (!text.startsWith(word, pos)) {
                throw error("expected " + word);
            }
            pos += word.length();
            return value;
        }

        Map<String, Object> object(int depth) {
            if (depth > MAX_DEPTH) {
                throw error("nested deeper than " + MAX_DEPTH);
            }
            pos++; // '{'
            Map<String, Object> members = new LinkedHashMap<>();
            skipWhitespace();
            if (peek() == '}') {
                pos++;
                return Collections.unmodifiableMap(members);
            }
            while (true) {
                skipWhitespace();
                if (peek() != '"') {
                    throw error("expected a member name");
                }
                int at = pos;
                String name = string();
                skipWhitespace();
                expect(':');
                skipWhitespace();
                Object value = value(depth);
                if (members.containsKey(name)) {
                    throw new ParseException("duplicate member \"" + name + "\"", at);
                }
                members.put(name, value);
                skipWhitespace();
                char c = next();
                if (c == '}') {
                    return Collections.unmodifiableMap(members);
                }
                if (c != ',') {
                    pos--;
                    throw error("expected ',' or '}'");
                }
            }
        }

        List<Object> array(int depth) {
            if (depth > MAX_DEPTH) {
                throw error("nested deeper than " + MAX_DEPTH);
            }
            pos++; // '['
            List<Object> items = new ArrayList<>();
            skipWhitespace();
            if (peek() == ']') {
                pos++;
                return Collections.unmodifiableList(items);
            }
            while (true) {
                skipWhitespace();
                items.add(value(depth));
                skipWhitespace();
                char c = next();
                if (c == ']') {
                    return Collections.unmodifiableList(items);
                }
                if (c != ',') {
                    pos--;
                    throw error("expected ',' or ']'");
                }
            }
        }

        String string() {
            pos++; // opening quote
            StringBuilder out = new StringBuilder();
            while (true) {
                if (pos >= text.length()) {
                    throw error("unterminated string");
                }
                char c = text.charAt(pos++);
                if (c == '"') {
                    return out.toString();
                }
                if (c < 0x20) {
                    pos--;
                    throw error("control character in a string");
                }
                if (c == '\\') {
                    escape(out);
                } else if (Character.isSurrogate(c)) {
                    // A Java String may hold unpaired surrogates; valid JSON text (Unicode) may not.
                    if (Character.isHighSurrogate(c) && pos < text.length()
                            && Character.isLowSurrogate(text.charAt(pos))) {
                        out.append(c).append(text.charAt(pos++));
                    } else {
                        pos--;
                        throw error("unpaired surrogate");
                    }
                } else {
                    out.append(c);
                }
            }
        }

        void escape(StringBuilder out) {
            char c = next();
            switch (c) {
                case '"' -> out.append('"');
                case '\\' -> out.append('\\');
                case '/' -> out.append('/');
                case 'b' -> out.append('\b');
                case 'f' -> out.append('\f');
                case 'n' -> out.append('\n');
                case 'r' -> out.append('\r');
                case 't' -> out.append('\t');
                case 'u' -> {
                    char unit = hex4();
                    if (Character.isHighSurrogate(unit)) {
                        if (!text.startsWith("\\u", pos)) {
                            throw error("unpaired surrogate escape");
                        }
                        pos += 2;
                        char low = hex4();
                        if (!Character.isLowSurrogate(low)) {
                            throw error("unpaired surrogate escape");
                        }
                        out.append(unit).append(low);
                    } else if (Character.isLowSurrogate(unit)) {
                        throw error("unpaired surrogate escape");
                    } else {
                        out.append(unit);
                    }
                }
                default -> {
                    pos--;
                    throw error("bad escape");
                }
            }
        }

        char hex4() {
            if (pos + 4 > text.length()) {
                throw error("short \\u escape");
            }
            int value = 0;
            for (int i = 0; i < 4; i++) {
                int digit = Character.digit(text.charAt(pos), 16);
                if (digit < 0 || text.charAt(pos) > 'f') {
                    throw error("bad hex digit in \\u escape");
                }
                value = value * 16 + digit;
                pos++;
            }
            return (char) value;
        }

        Object number() {
            int start = pos;
            if (peek() == '-') {
                pos++;
            }
            if (peek() == '0') {
                pos++;
                if (isDigit(peek())) {
                    throw error("leading zero");
                }
            } else if (isDigit(peek())) {
                digits();
            } else {
                throw error("expected a digit");
            }
            boolean integer = true;
            if (peek() == '.') {
                integer = false;
                pos++;
                if (!isDigit(peek())) {
                    throw error("expected a digit after '.'");
                }
                digits();
            }
            if (peek() == 'e' || peek() == 'E') {
                integer = false;
                pos++;
                if (peek() == '+' || peek() == '-') {
                    pos++;
                }
                if (!isDigit(peek())) {
                    throw error("expected a digit in the exponent");
                }
                digits();
            }
            String literal = text.substring(start, pos);
            if (!integer) {
                double d = Double.parseDouble(literal);
                if (Double.isInfinite(d)) {
                    throw new ParseException("number out of range", start);
                }
                return d;
            }
            BigInteger big = new BigInteger(literal);
            return big.bitLength() < 64 ? (Object) big.longValue() : big;
        }

        void digits() {
            while (isDigit(peek())) {
                pos++;
            }
        }

        static boolean isDigit(char c) {
            return c >= '0' && c <= '9';
        }

        /** The next character without consuming it, or NUL at the end (never valid where it is compared). */
        char peek() {
            return pos < text.length() ? text.charAt(pos) : '\0';
        }

        char next() {
            if (pos >= text.length()) {
                throw error("unexpected end of text");
            }
            return text.charAt(pos++);
        }

        void expect(char c) {
            if (next() != c) {
                pos--;
                throw error("expected '" + c + "'");
            }
        }
    }
}
