package io.kefu.protocol;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The strict JSON reader and the writer. */
class JsonTest {
    @Test
    void values() {
        assertEquals(List.of(1L, -2L, 1.5, 1000.0, "a", true, false), Json.parse(" [1,-2,1.5,1e3,\"a\",true,false] "));
        assertNull(Json.parse("null"));
        assertEquals(new BigInteger("18446744073709551615"), Json.parse("18446744073709551615"));
        assertEquals(Long.MIN_VALUE, Json.parse("-9223372036854775808"));
        assertEquals(Long.MAX_VALUE, Json.parse("9223372036854775807"));
        assertEquals(new BigInteger("9223372036854775808"), Json.parse("9223372036854775808"));
        assertEquals(-0.0, Json.parse("-0.0"));
        assertEquals(0L, Json.parse("-0"));
        Map<String, Object> m = Json.parseObject("{\"b\": {\"x\": []}, \"a\": \"\\u00e9\\n\\\"\\/\"}");
        assertEquals(List.of("b", "a"), List.copyOf(m.keySet()), "document order");
        assertEquals("é\n\"/", m.get("a"));
        assertEquals("😀", Json.parse("\"\\ud83d\\ude00\""));
        assertEquals("账单😀", Json.parse("\"账单😀\""));
    }

    @Test
    void resultDetailAsUtf8() {
        byte[] detail = Hex.decode("7b227374617465223a227472616e73666572726564222c"
                + "226f776e6572223a226167656e742d37227d"); // RESULT's detail in frames.json
        assertEquals(Map.of("state", "transferred", "owner", "agent-7"), Json.parse(detail));
        assertEquals(0, assertThrows(Json.ParseException.class, () -> Json.parse(new byte[] {'"', (byte) 0xff, '"'}))
                .offset());
    }

    @Test
    void strictness() {
        String[] bad = {
            "", " ", "01", "1.", ".5", "-", "+1", "1e", "1e+", "0x10", "NaN", "Infinity", "[1,]", "[,1]", "{\"a\":1,}",
            "{a:1}", "{'a':1}", "{\"a\" 1}", "{\"a\":1,\"a\":2}", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"",
            "\"\\x\"", "\"\\u12\"", "\"\\u12g4\"", "\"a", "\"\u0001\"", "\"\t\"", "nul", "truee", "[1] [2]", "// c\n1",
            "[1", "{", "{\"a\":", "1e999", "\"\ud800\"",
        };
        for (String text : bad) {
            assertThrows(Json.ParseException.class, () -> Json.parse(text), text);
        }
        assertThrows(Json.ParseException.class, () -> Json.parseObject("[]"));
    }

    @Test
    void nestingIsBounded() {
        String deep = "[".repeat(Json.MAX_DEPTH) + "]".repeat(Json.MAX_DEPTH);
        assertInstanceOf(List.class, Json.parse(deep));
        String tooDeep = "[".repeat(Json.MAX_DEPTH + 1) + "]".repeat(Json.MAX_DEPTH + 1);
        assertThrows(Json.ParseException.class, () -> Json.parse(tooDeep));
        String hostile = "[".repeat(1_000_000);
        assertThrows(Json.ParseException.class, () -> Json.parse(hostile), "no StackOverflowError");
    }

    @Test
    void resultsAreUnmodifiable() {
        Object list = Json.parse("[{}]");
        assertThrows(UnsupportedOperationException.class, () -> ((List<?>) list).clear());
    }

    @Test
    void writeRoundTrips() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("s", "a\"b\\c\n\u0001é😀");
        m.put("n", List.of(1L, -2, new BigInteger("18446744073709551615"), 1.5, true));
        m.put("z", null);
        String text = Json.write(m);
        assertEquals("{\"s\":\"a\\\"b\\\\c\\n\\u0001é😀\","
                + "\"n\":[1,-2,18446744073709551615,1.5,true],\"z\":null}", text);
        Map<String, Object> back = Json.parseObject(text);
        assertEquals(m.get("s"), back.get("s"));
        assertThrows(IllegalArgumentException.class, () -> Json.write(Double.NaN));
        assertThrows(IllegalArgumentException.class, () -> Json.write("\ud800"));
        assertThrows(IllegalArgumentException.class, () -> Json.write(new Object()));
        byte[] utf8 = Json.write(Map.of("k", "账")).getBytes(StandardCharsets.UTF_8);
        assertEquals(Map.of("k", "账"), Json.parse(utf8));
        assertEquals(Arrays.asList(1L, null), Json.parse(Json.write(Arrays.asList(1L, null))));
    }

    @Test
    void theVectorFilesParse() {
        for (String file : List.of("frames.json", "records.json", "handshakes.json", "crypto-known-answers.json")) {
            assertInstanceOf(Map.class, Vectors.load(file), file);
        }
    }
}
