package io.kefu.protocol;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/**
 * ErrorCode against spec/errors.toml, read here with a line parser for its simple layout, so that a Java build
 * without Python notices a stale enum too (spec/gen_codes.py --check is the Python side's check).
 */
class ErrorCodeTest {
    private record Row(String name, int code, boolean fatal, String description) {}

    private static List<Row> table() throws IOException {
        List<Row> rows = new ArrayList<>();
        String name = null;
        Integer code = null;
        Boolean fatal = null;
        for (String line : Files.readAllLines(Vectors.specFile("errors.toml"), StandardCharsets.UTF_8)) {
            if (line.startsWith("[")) {
                name = line.substring(1, line.indexOf(']'));
            } else if (line.startsWith("code = ")) {
                code = Integer.parseInt(line.substring(7).trim());
            } else if (line.startsWith("fatal = ")) {
                fatal = Boolean.parseBoolean(line.substring(8).trim());
            } else if (line.startsWith("description = \"")) {
                String text = line.substring(15, line.length() - 1).replace("\\\"", "\"").replace("\\\\", "\\");
                rows.add(new Row(name, code, fatal, text));
            }
        }
        return rows;
    }

    @Test
    void theEnumIsTheTable() throws IOException {
        List<Row> rows = table();
        ErrorCode[] values = ErrorCode.values();
        assertEquals(rows.size(), values.length);
        for (int i = 0; i < values.length; i++) {
            Row row = rows.get(i);
            assertEquals(row, new Row(values[i].name(), values[i].code(), values[i].fatal(), values[i].description()));
        }
        assertTrue(rows.size() >= 30, "the table was read: " + rows.size());
    }

    @Test
    void lookupsAndSection47sRuleForUnknownCodes() {
        assertEquals(Optional.of(ErrorCode.RATE_LIMITED), ErrorCode.of(429));
        assertEquals(Optional.empty(), ErrorCode.of(499));
        assertFalse(ErrorCode.isFatalCode(429));
        assertFalse(ErrorCode.isFatalCode(499), "an unknown 4xx code is a request error");
        assertTrue(ErrorCode.isFatalCode(599), "any other unknown code is fatal");
        assertTrue(ErrorCode.isFatalCode(150));
        assertEquals(ErrorCode.INTERNAL_ERROR, ErrorCode.orInternalError(599));
        assertEquals(ErrorCode.AUTH_FAILED, ErrorCode.orInternalError(206));
        for (ErrorCode c : ErrorCode.values()) {
            assertEquals(c.code() >= 100 && c.code() < 400 || c.fatal() && c.code() >= 500, c.fatal(), c.name());
        }
    }

    @Test
    void protocolExceptionCarriesItsCode() {
        ProtocolException e = new ProtocolException(ErrorCode.BAD_RECORD_MAC, "tampered");
        assertEquals(ErrorCode.BAD_RECORD_MAC, e.code());
        assertEquals("tampered", e.reason());
        assertTrue(e.fatal());
        assertEquals("BAD_RECORD_MAC (300): tampered", e.getMessage());
        assertFalse(new ProtocolException(ErrorCode.RATE_LIMITED, "x").fatal());
    }
}
