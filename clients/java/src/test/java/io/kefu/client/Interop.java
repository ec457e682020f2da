package io.kefu.client;

import io.kefu.protocol.Suite;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;

/**
 * The Java side of the interop tests (tests/java/test_java_client.py) against a real {@code kefu serve}: one
 * scenario per run, the outcome on stdout, one line per event, so that the Python test checks it.
 *
 * <pre>
 * java ... io.kefu.client.Interop MODE --host H --port P --app ID --secret S --pins PIN,PIN [--suite national]
 *   send     --conv C [--to ID] --count N [--prefix P] [--window W]   SENT i seq duplicate ... DONE
 *   receive  --count N [--timeout S] [--reply PREFIX] [--explicit]   RECV conv seq sender redelivery text ... DONE k
 *   resume   --conv C [--to ID]                                     CONNECTED/RECONNECTED resumed=..., SENT, DONE
 * </pre>
 *
 * Not a JUnit test: the pytest bridge runs it as a subprocess. Exit status 0 when the scenario completed.
 */
public final class Interop {
    private Interop() {}

    /**
     * Run one scenario.
     *
     * @param args the mode and its options
     * @throws Exception on any failure (exit status 1)
     */
    public static void main(String[] args) throws Exception {
        String mode = args[0];
        Map<String, String> o = options(Arrays.copyOfRange(args, 1, args.length));
        KefuClient.Builder b = KefuClient.builder().host(o.get("host")).port(Integer.parseInt(o.get("port")))
                .appId(o.get("app")).appSecret(o.get("secret")).pins(List.of(o.get("pins").split(",")))
                .suites(KefuUrl.suite(o.getOrDefault("suite", "national")))
                .explicitAck(o.containsKey("explicit"))
                .backoff(new Backoff(0.2, 2.0, 0.2, -1))
                .onError(e -> System.out.println("ERROR " + e));
        try (KefuClient client = b.build()) {
            client.connect();
            System.out.println("CONNECTED resumed=" + client.isResumed() + " suite="
                    + client.suite().map(Suite::label).orElse("?"));
            switch (mode) {
                case "send" -> send(client, o);
                case "receive" -> receive(client, o);
                case "resume" -> resume(client, o);
                default -> throw new IllegalArgumentException("unknown mode " + mode);
            }
        }
        System.out.flush();
        System.exit(0); // (daemon threads only; explicit for a prompt exit)
    }

    private static void send(KefuClient client, Map<String, String> o) throws Exception {
        long conv = Long.parseLong(o.get("conv"));
        int count = Integer.parseInt(o.get("count"));
        int window = Integer.parseInt(o.getOrDefault("window", "16"));
        String prefix = o.getOrDefault("prefix", "java");
        ArrayDeque<CompletableFuture<SendReceipt>> inFlight = new ArrayDeque<>();
        int printed = 0;
        for (int i = 0; i < count; i++) {
            Outgoing m = Outgoing.text(conv, prefix + " " + i);
            if (o.containsKey("to")) {
                m = m.to(o.get("to").split(","));
            }
            inFlight.add(client.send(m));
            if (inFlight.size() >= window) {
                printed = report(inFlight.poll(), printed);
            }
        }
        while (!inFlight.isEmpty()) {
            printed = report(inFlight.poll(), printed);
        }
        System.out.println("DONE");
    }

    private static int report(CompletableFuture<SendReceipt> f, int i) throws InterruptedException {
        try {
            SendReceipt r = f.get();
            System.out.println("SENT " + i + " " + r.seq() + " " + r.duplicate());
        } catch (ExecutionException e) {
            System.out.println("FAILED " + i + " " + e.getCause());
        }
        System.out.flush();
        return i + 1;
    }

    private static void receive(KefuClient client, Map<String, String> o) throws Exception {
        int count = Integer.parseInt(o.get("count"));
        Duration timeout = Duration.ofMillis((long) (Double.parseDouble(o.getOrDefault("timeout", "20")) * 1000));
        long deadline = System.nanoTime() + timeout.toNanos();
        String reply = o.get("reply");
        int got = 0;
        while (got < count) {
            long left = deadline - System.nanoTime();
            Message m = left > 0 ? client.receive(Duration.ofNanos(left)) : null;
            if (m == null) {
                break;
            }
            if (m.isSystemEvent()) {
                continue;
            }
            got++;
            System.out.println("RECV " + m.conversationId() + " " + m.seq() + " " + m.sender() + " "
                    + m.redelivery() + " " + m.text());
            System.out.flush();
            if (reply != null) {
                client.send(m.conversationId(), reply + " " + m.text()).get();
            }
            if (o.containsKey("explicit")) {
                m.ack();
            }
        }
        System.out.println("DONE " + got);
    }

    private static void resume(KefuClient client, Map<String, String> o) throws Exception {
        long conv = Long.parseLong(o.get("conv"));
        long until = System.nanoTime() + 5_000_000_000L;
        while (!client.hasTicket() && System.nanoTime() < until) {
            Thread.sleep(20);
        }
        System.out.println("TICKET " + client.hasTicket());
        client.abortConnection();
        until = System.nanoTime() + 10_000_000_000L;
        while ((client.reconnects() < 1 || !client.isConnected()) && System.nanoTime() < until) {
            Thread.sleep(20);
        }
        System.out.println("RECONNECTED resumed=" + client.isResumed() + " reconnects=" + client.reconnects());
        Outgoing m = Outgoing.text(conv, "after resumption");
        if (o.containsKey("to")) {
            m = m.to(o.get("to").split(","));
        }
        System.out.println("SENT 0 " + client.send(m).get().seq() + " false");
        System.out.println("DONE");
    }

    private static Map<String, String> options(String[] args) {
        Map<String, String> o = new HashMap<>();
        for (int i = 0; i < args.length; i++) {
            String name = args[i].substring(2);
            if (i + 1 < args.length && !args[i + 1].startsWith("--")) {
                o.put(name, args[++i]);
            } else {
                o.put(name, "");
            }
        }
        return o;
    }
}
