import io.kefu.client.KefuClient;
import io.kefu.client.KefuException;
import io.kefu.client.Message;
import io.kefu.client.OpenedConversation;
import io.kefu.client.Outgoing;
import io.kefu.client.SendReceipt;
import java.time.Duration;
import java.util.Map;

/**
 * Example visitor: opens a conversation with an agent, says hello, waits for the reply, exits (as
 * clients/python/examples/visitor.py).
 *
 * <pre>
 * java -cp build/classes:build/example-classes:/usr/share/java/bcprov.jar Visitor --port 7420 --app-id visitor-1 \
 *     --secret="$VISITOR_SECRET" --pins-file data/keys/pins.txt --service "您好，我想查询信用卡账单"
 * </pre>
 *
 * With --service the visitor asks the customer-service desk instead of naming an agent (--agent): the server routes
 * the conversation to an online agent (or queues it) and the first agent to answer replies. Exit status: 0 once the
 * agent replied, 2 if no reply came within --timeout seconds, 1 on other errors.
 */
public final class Visitor {
    private Visitor() {}

    /**
     * Run the visitor.
     *
     * @param args the options (see the class comment)
     * @throws Exception on unexpected failures
     */
    public static void main(String[] args) throws Exception {
        ExampleArgs a = ExampleArgs.parse(args, "visitor-1");
        String text = a.positional.isEmpty() ? "您好，我想查询信用卡账单" : a.positional.get(0);
        long deadline = System.nanoTime() + (long) (a.timeout * 1e9);
        try (KefuClient client = a.client()) {
            client.connect();
            long conversation;
            if (a.service) {
                OpenedConversation opened = client.service().open(Map.of("channel", "example"), text).get();
                conversation = opened.conversationId();
                String where = opened.agent().isEmpty() ? "queue position " + opened.position()
                        : "agent " + opened.agent();
                System.out.println("visitor: opened conversation " + conversation + " in " + opened.group() + ": "
                        + where);
            } else {
                conversation = KefuClient.newConversationId();
                SendReceipt receipt = client.send(Outgoing.text(conversation, text).to(a.agent)).get();
                System.out.println("visitor: sent #" + receipt.seq() + " to " + a.agent + " in conversation "
                        + conversation);
            }
            while (true) {
                long left = deadline - System.nanoTime();
                Message message = left > 0 ? client.receive(Duration.ofNanos(left)) : null;
                if (message == null) {
                    System.err.println("visitor: no reply within " + a.timeout + " s");
                    System.exit(2);
                }
                if (message.conversationId() != conversation || message.sender().equals(a.appId)) {
                    continue;
                }
                if (message.isSystemEvent()) { // the server's (opened, queued, assigned, ...)
                    System.out.println("visitor: event " + message.text());
                    continue;
                }
                System.out.println("visitor: " + message.sender() + " replied: " + message.text());
                break;
            }
        } catch (KefuException e) {
            System.err.println("visitor: " + e.getMessage());
            System.exit(1);
        }
    }
}
