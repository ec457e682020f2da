import io.kefu.client.AgentState;
import io.kefu.client.KefuClient;
import io.kefu.client.KefuException;
import io.kefu.client.Message;
import java.time.Duration;

/**
 * Example agent: answers the visitors who write to it, then exits after --count replies (as
 * clients/python/examples/agent.py).
 *
 * <pre>
 * java -cp build/classes:build/example-classes:/usr/share/java/bcprov.jar Agent --port 7420 --app-id agent-7 \
 *     --secret="$AGENT_SECRET" --pins-file data/keys/pins.txt --service --count 1
 * </pre>
 *
 * Start the visitor once it prints "agent: ready". Messages that arrived while the agent was offline are delivered
 * when it connects. With --service the agent (an app registered with --role agent) goes online at the service desk
 * and answers the visitors the server routes to it; system events and the staff channel are printed, not answered.
 * Exit status: 0 after --count replies, 2 on --timeout, 1 on other errors.
 */
public final class Agent {
    private Agent() {}

    /**
     * Run the agent.
     *
     * @param args the options (see the class comment)
     * @throws Exception on unexpected failures
     */
    public static void main(String[] args) throws Exception {
        ExampleArgs a = ExampleArgs.parse(args, "agent-7");
        if (!java.util.Arrays.asList(args).contains("--timeout")) {
            a.timeout = 60;
        }
        long deadline = System.nanoTime() + (long) (a.timeout * 1e9);
        int replies = 0;
        try (KefuClient client = a.client()) {
            client.connect();
            if (a.service) {
                client.service().setStatus(AgentState.ONLINE).get();
            }
            System.out.println("agent: ready (" + client.suite().map(s -> s.label()).orElse("?") + ")");
            while (replies < a.count) {
                long left = deadline - System.nanoTime();
                Message message = left > 0 ? client.receive(Duration.ofNanos(left)) : null;
                if (message == null) {
                    System.err.println("agent: stopped after " + a.timeout + " s");
                    System.exit(2);
                }
                if (message.sender().equals(a.appId)) {
                    continue; // our own replies, echoed back to this device
                }
                if (message.isSystemEvent()) {
                    System.out.println("agent: event " + message.text());
                    continue;
                }
                if (KefuClient.isStaffChannel(message.conversationId())) {
                    System.out.println("agent: staff " + message.sender() + ": " + message.text());
                    continue;
                }
                System.out.println("agent: " + message.sender() + " says: " + message.text());
                client.send(message.conversationId(), "您好 " + message.sender() + "，已收到：" + message.text()).get();
                replies++;
            }
        } catch (KefuException e) {
            System.err.println("agent: " + e.getMessage());
            System.exit(1);
        }
    }
}
