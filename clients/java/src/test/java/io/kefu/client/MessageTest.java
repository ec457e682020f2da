package io.kefu.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.Map;
import org.junit.jupiter.api.Test;

class MessageTest {
    static Message delivered(String sender, int contentType) {
        byte[] body = "{\"event\":\"transferred\",\"agent\":\"a2\"}".getBytes(StandardCharsets.UTF_8);
        return new Message(5, 2, sender, body, contentType, new byte[16], 77, 123, Map.of(), false, null);
    }

    @Test
    void aSystemEventIsAnEventFromTheSystemSender() {
        assertEquals("#kefu", Message.SYSTEM_SENDER, "spec section 13.2");
        assertTrue(delivered("#kefu", Message.EVENT).isSystemEvent()); // the server's own event
        // a peer's EVENT is the peer's message, whatever its body says
        assertFalse(delivered("v1", Message.EVENT).isSystemEvent());
        assertFalse(delivered("#kefu", Message.TEXT).isSystemEvent()); // an auto-reply of the server's, not an event
        assertFalse(delivered("agent", Message.TEXT).isSystemEvent());
    }
}
