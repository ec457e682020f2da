package io.kefu.client;

import io.kefu.protocol.SessionTicket;
import java.lang.management.ManagementFactory;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;

/**
 * The Java half of bench/bench_java_client.py: one measurement per run, printed as one JSON line
 * {@code {"mode": ..., "ops": N, "wall_s": ..., "cpu_s": ...}} where cpu_s is this process's CPU time (all threads)
 * over the timed section only.
 *
 * <pre>
 * java ... io.kefu.client.ClientBench full|resumed|messages --host H --port P --app ID --secret S --pins P,P
 *     [--suite national] [--count N] [--warmup N] [--window W] [--to ID]
 * </pre>
 *
 * full: N sequential connections, each a new client doing a full handshake, then close. resumed: the same, each
 * resuming with the ticket the previous connection received. messages: one client, one connection, N messages of 64
 * bytes sent closed-loop with at most W waiting for their receipts (each durable on the server before it answers).
 */
public final class ClientBench {
    private ClientBench() {}

    /**
     * Run one measurement.
     *
     * @param args the mode and its options
     * @throws Exception on any failure
     */
    public static void main(String[] args) throws Exception {
        String mode = args[0];
        java.util.Map<String, String> o = new java.util.HashMap<>();
        for (int i = 1; i + 1 < args.length; i += 2) {
            o.put(args[i].substring(2), args[i + 1]);
        }
        KefuClient.Builder b = KefuClient.builder().host(o.get("host")).port(Integer.parseInt(o.get("port")))
                .appId(o.get("app")).appSecret(o.get("secret")).pins(List.of(o.get("pins").split(",")))
                .suites(KefuUrl.suite(o.getOrDefault("suite", "national")));
        int count = Integer.parseInt(o.getOrDefault("count", "200"));
        int warmup = Integer.parseInt(o.getOrDefault("warmup", "50"));
        double[] measured = switch (mode) {
            case "full", "resumed" -> handshakes(b, mode.equals("resumed"), warmup, count);
            case "messages" -> messages(b, warmup, count, Integer.parseInt(o.getOrDefault("window", "1000")),
                    o.get("to"));
            default -> throw new IllegalArgumentException(mode);
        };
        System.out.printf(Locale.ROOT, "{\"mode\": \"%s\", \"ops\": %d, \"wall_s\": %.6f, \"cpu_s\": %.6f}%n", mode,
                count, measured[0], measured[1]);
        System.exit(0);
    }

    private static long cpuNanos() {
        return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean())
                .getProcessCpuTime();
    }

    private static double[] handshakes(KefuClient.Builder b, boolean resumed, int warmup, int count) {
        SessionTicket[] ticket = {null};
        Runnable once = () -> {
            try (KefuClient c = b.build()) {
                if (resumed && ticket[0] != null) {
                    c.offerTicket(ticket[0]);
                }
                c.connect();
                if (resumed && ticket[0] != null && !c.isResumed()) {
                    throw new IllegalStateException("not resumed");
                }
                if (resumed) {
                    long until = System.nanoTime() + 5_000_000_000L;
                    SessionTicket t;
                    while ((t = c.takeTicket()) == null && System.nanoTime() < until) {
                        Thread.onSpinWait();
                    }
                    ticket[0] = t;
                }
            }
        };
        for (int i = 0; i < warmup; i++) {
            once.run();
        }
        long cpu0 = cpuNanos();
        long t0 = System.nanoTime();
        for (int i = 0; i < count; i++) {
            once.run();
        }
        return new double[] {(System.nanoTime() - t0) / 1e9, (cpuNanos() - cpu0) / 1e9};
    }

    private static double[] messages(KefuClient.Builder b, int warmup, int count, int window, String to)
            throws Exception {
        byte[] body = new byte[64];
        Arrays.fill(body, (byte) 'x');
        try (KefuClient c = b.build()) {
            c.connect();
            long conv = KefuClient.newConversationId();
            c.send(Outgoing.of(conv, body, Message.TEXT).to(to)).get(); // creates the conversation
            run(c, conv, body, warmup, window);
            long cpu0 = cpuNanos();
            long t0 = System.nanoTime();
            run(c, conv, body, count, window);
            return new double[] {(System.nanoTime() - t0) / 1e9, (cpuNanos() - cpu0) / 1e9};
        }
    }

    private static void run(KefuClient c, long conv, byte[] body, int count, int window) throws Exception {
        ArrayDeque<CompletableFuture<SendReceipt>> inFlight = new ArrayDeque<>(window);
        for (int i = 0; i < count; i++) {
            if (inFlight.size() >= window) {
                inFlight.poll().get();
            }
            inFlight.add(c.send(Outgoing.of(conv, body, Message.TEXT)));
        }
        for (CompletableFuture<SendReceipt> f : inFlight) {
            f.get();
        }
    }
}
