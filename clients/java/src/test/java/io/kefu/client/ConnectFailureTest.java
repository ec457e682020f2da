package io.kefu.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kefu.protocol.Frame;
import io.kefu.protocol.FrameCodec;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.Socket;
import java.time.Duration;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** Real sockets on loopback, no server: the typed errors of a failed first connection. */
class ConnectFailureTest {
    static KefuClient.Builder client(int port) {
        return KefuClient.builder().host("127.0.0.1").port(port).appId("a").appSecret("c2VjcmV0")
                .pin(KefuUrlTest.SM2).connectTimeout(Duration.ofMillis(500));
    }

    @Test
    void refusedConnectionIsAConnectExceptionWithoutCode() throws Exception {
        int port;
        try (ServerSocket s = new ServerSocket(0)) {
            port = s.getLocalPort();
        }
        try (KefuClient c = client(port).build()) {
            ConnectException e = assertThrows(ConnectException.class, c::connect);
            assertEquals(KefuException.NO_CODE, e.code());
            ExecutionException after = assertThrows(ExecutionException.class, () -> c.send(1, "x").get());
            assertEquals(ClientClosedException.class, after.getCause().getClass());
        }
    }

    @Test
    void silentServerIsAConnectTimeout() throws Exception {
        try (ServerSocket s = new ServerSocket(0); KefuClient c = client(s.getLocalPort()).build()) {
            assertThrows(ConnectTimeoutException.class, c::connect);
        }
    }

    @Test
    void sendBeforeConnectFails() {
        try (KefuClient c = client(1).build()) {
            ExecutionException e = assertThrows(ExecutionException.class, () -> c.send(1, "x").get());
            assertEquals(ClientClosedException.class, e.getCause().getClass());
        }
    }

    @Test
    void handshakeRefusedForLoadIsRetriedThenServerBusy() throws Exception {
        AtomicInteger refused = new AtomicInteger();
        try (ServerSocket s = new ServerSocket(0)) {
            Thread server = new Thread(() -> {
                byte[] goaway = FrameCodec.encode(new Frame.Goaway(0, 0, Codes.OVERLOADED, 150, 100, 1000, 0, "busy"));
                while (!s.isClosed()) {
                    try (Socket peer = s.accept()) {
                        peer.getInputStream().read(new byte[4096]); // the CLIENT_HELLO (or its first part)
                        peer.getOutputStream().write(goaway);
                        refused.incrementAndGet();
                    } catch (IOException e) {
                        return;
                    }
                }
            });
            server.setDaemon(true);
            server.start();
            try (KefuClient c = client(s.getLocalPort()).connectTimeout(Duration.ofMillis(1000)).build()) {
                ServerBusyException e = assertThrows(ServerBusyException.class, c::connect);
                assertEquals(Codes.OVERLOADED, e.code());
            }
        }
        assertTrue(refused.get() >= 2, "retried after the GOAWAY's delay: " + refused.get() + " attempts");
    }
}
