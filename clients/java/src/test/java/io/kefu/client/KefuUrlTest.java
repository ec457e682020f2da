package io.kefu.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.kefu.protocol.Suite;
import java.util.List;
import org.junit.jupiter.api.Test;

class KefuUrlTest {
    static final String SM2 = "sm2:" + "ab".repeat(32);
    static final String ED = "ed25519:" + "cd".repeat(32);

    @Test
    void parsesEveryPart() {
        KefuUrl u = KefuUrl.parse("kefu://visitor%2D1:c2VjcmV0@example.com:7421/?pin=" + SM2 + "&pin=" + ED
                + "&suite=INTERNATIONAL&suite=national");
        assertEquals("example.com", u.host());
        assertEquals(7421, u.port());
        assertEquals("visitor-1", u.appId());
        assertEquals("c2VjcmV0", u.secret());
        assertEquals(List.of(SM2, ED), u.pins());
        assertEquals(List.of(Suite.INTERNATIONAL, Suite.NATIONAL), u.suites());
    }

    @Test
    void defaultsAndIpv6() {
        KefuUrl u = KefuUrl.parse("kefu://app@[::1]?pin=" + SM2);
        assertEquals("::1", u.host());
        assertEquals(KefuUrl.DEFAULT_PORT, u.port());
        assertNull(u.secret());
        assertEquals(List.of(), u.suites());
    }

    @Test
    void errorsNeverContainTheSecret() {
        String secret = "TOPSECRETabc";
        for (String bad : List.of("http://a:" + secret + "@h?pin=" + SM2, "kefu://a:" + secret + "@h/path?pin=" + SM2,
                "kefu://a:" + secret + "@h?pin=sm2:zz", "kefu://a:" + secret + "@h?color=red",
                "kefu://a:" + secret + "@h?suite=weak", "kefu://:" + secret + "@h?pin=" + SM2)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> KefuUrl.parse(bad));
            assertFalse(e.getMessage().contains(secret), e.getMessage());
        }
    }

    @Test
    void builderTakesTheUrlAndChecksWhatIsMissing() {
        KefuClient.Builder b = KefuClient.builder().url("kefu://app:c2VjcmV0@127.0.0.1:1?pin=" + SM2);
        b.build().close(); // never connected: closing is a no-op
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> KefuClient.builder().url("kefu://app:c2VjcmV0@127.0.0.1:1").build());
        assertEquals("need at least one server pin (pin(), or pin= in a URL)", e.getMessage());
        assertThrows(IllegalArgumentException.class,
                () -> KefuClient.builder().url("kefu://app@127.0.0.1:1?pin=" + SM2).build());
        assertThrows(IllegalArgumentException.class, () -> KefuClient.builder().appSecret("not base64!"));
        assertThrows(IllegalArgumentException.class, () -> KefuClient.builder()
                .url("kefu://app:c2VjcmV0@127.0.0.1:1?pin=" + SM2).keepalive(java.time.Duration.ofSeconds(1)).build());
    }
}
