package io.kefu.client;

import io.kefu.protocol.Frame;
import io.kefu.protocol.Json;
import io.kefu.protocol.MetaEntry;
import io.kefu.protocol.SearchHit;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Customer-service requests and events of a client (spec/PROTOCOL.md section 13): {@code client.service()}.
 *
 * <pre>{@code
 * OpenedConversation opened = visitor.service().open(Map.of("channel", "app"), "我的卡丢了").get();
 * agent.service().setStatus(AgentState.ONLINE).get();
 * ServiceEvent event = agent.service().nextEvent(Duration.ofSeconds(5));   // queue updates, sentiment
 * agent.service().decideDraft(conversation, draftSeq, DraftAction.APPROVE, "").get();
 * }</pre>
 *
 * <p>Conversation messages (including the server's EVENT messages: opened, assigned, transferred, closed, drafts
 * in the staff channel) arrive through the client's deliveries like any other; {@link Message#isSystemEvent()}
 * tells the server's events from everything else. A request is sent once: if the connection is lost before the
 * answer, its future fails with {@link ConnectionLostException} (OPEN can be repeated safely with the same client
 * reference). Refusals fail it with {@link RequestRefusedException} carrying the wire code.
 *
 * <p>Thread-safe: every method may be called from any thread; the futures complete on the client's I/O thread.
 */
public final class ServiceApi {
    /** Queue and sentiment events kept for {@link #nextEvent}; older ones are dropped. */
    static final int MAX_EVENTS = 1000;
    /** Default timeout of a request. */
    static final Duration REQUEST_TIMEOUT = Duration.ofSeconds(10);
    private static final SecureRandom RANDOM = new SecureRandom();

    private final KefuClient client;
    private final Set<Request> pending = new HashSet<>(); // I/O thread
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition eventReady = lock.newCondition();
    private final ArrayDeque<ServiceEvent> events = new ArrayDeque<>();

    private static final class Request {
        final CompletableFuture<Frame> future = new CompletableFuture<>();
        Link link;
        long requestId;
    }

    ServiceApi(KefuClient client) {
        this.client = client;
    }

    // --- requests -------------------------------------------------------------------------------------------

    /**
     * Set an agent's status: ONLINE agents get conversations.
     *
     * @param status the status
     * @return a future of the outcome
     */
    public CompletableFuture<Outcome> setStatus(AgentState status) {
        return outcome(new Frame.AgentStatus(status.code()));
    }

    /**
     * Ask for service as a visitor: the server routes the conversation to an agent or queues it.
     *
     * @param attributes routing attributes (e.g. "channel", "vip")
     * @param firstMessage the visitor's first message ("" for none)
     * @return a future of where it went
     */
    public CompletableFuture<OpenedConversation> open(Map<String, String> attributes, String firstMessage) {
        byte[] ref = new byte[16];
        RANDOM.nextBytes(ref);
        return open(attributes, firstMessage, "", "", ref);
    }

    /**
     * Ask for service, in full: a visitor, or an integration for {@code customer}.
     *
     * @param attributes routing attributes
     * @param firstMessage the first message ("" for none)
     * @param group a group of the tenant to ask for ("" for the default)
     * @param customer the customer an integration opens for ("" for the caller itself)
     * @param clientRef 16 bytes that make a repeated OPEN idempotent
     * @return a future of where it went
     */
    public CompletableFuture<OpenedConversation> open(Map<String, String> attributes, String firstMessage,
            String group, String customer, byte[] clientRef) {
        List<MetaEntry> meta = new ArrayList<>();
        attributes.forEach((k, v) -> meta.add(new MetaEntry(k, v.getBytes(StandardCharsets.UTF_8))));
        Frame frame = new Frame.OpenConversation(clientRef.clone(), customer, group, meta,
                firstMessage.getBytes(StandardCharsets.UTF_8));
        return request(frame, REQUEST_TIMEOUT).thenApply(answer -> {
            if (answer instanceof Frame.Opened o) {
                return new OpenedConversation(o.conversationId(), o.state(), o.group(), o.agent(), o.position());
            }
            toOutcome(answer);
            throw unexpected(answer);
        });
    }

    /**
     * Hand the conversation to an agent or a group.
     *
     * @param conversationId the conversation
     * @param toAgent the agent ("" to name a group)
     * @param toGroup the group ("" to name an agent)
     * @param expectOwner only if this agent still owns it ("" for no condition)
     * @param note a note for the receiving agent
     * @return a future of the outcome
     */
    public CompletableFuture<Outcome> transfer(long conversationId, String toAgent, String toGroup,
            String expectOwner, String note) {
        return outcome(new Frame.Transfer(conversationId, expectOwner, toAgent, toGroup, note));
    }

    /**
     * Close the conversation.
     *
     * @param conversationId the conversation
     * @param reason why
     * @return a future of the outcome
     */
    public CompletableFuture<Outcome> end(long conversationId, String reason) {
        return outcome(new Frame.EndConversation(conversationId, reason));
    }

    /**
     * A supervisor starts or stops watching (then whispers by sending to {@link KefuClient#staffChannel}).
     *
     * @param conversationId the conversation
     * @param on start (true) or stop
     * @return a future of the outcome
     */
    public CompletableFuture<Outcome> watch(long conversationId, boolean on) {
        return outcome(new Frame.Watch(conversationId, on ? 1 : 0));
    }

    /**
     * Approve, edit (with {@code text}) or reject an AI draft; the outcome's seq is the visitor message's.
     *
     * @param conversationId the conversation
     * @param draftSeq the draft's seq in the staff channel
     * @param action what to do
     * @param text the edited text ({@link DraftAction#EDIT}), else ""
     * @return a future of the outcome
     */
    public CompletableFuture<Outcome> decideDraft(long conversationId, long draftSeq, DraftAction action,
            String text) {
        return outcome(new Frame.DraftDecision(conversationId, draftSeq, action.code(),
                text.getBytes(StandardCharsets.UTF_8)));
    }

    /**
     * Messages of the agent's conversations containing {@code query}, newest first.
     *
     * @param query the text to find
     * @param limit at most this many
     * @return a future of the matches
     */
    public CompletableFuture<List<SearchMatch>> search(String query, int limit) {
        return request(new Frame.Search(query, limit), REQUEST_TIMEOUT).thenApply(answer -> {
            if (answer instanceof Frame.SearchResult r) {
                List<SearchMatch> matches = new ArrayList<>();
                for (SearchHit hit : r.hits()) {
                    matches.add(new SearchMatch(hit.conversationId(), hit.seq(), hit.timestampMs(), hit.snippet()));
                }
                return matches;
            }
            toOutcome(answer);
            throw unexpected(answer);
        });
    }

    /**
     * The conversation's record as this user may see it (staff: with tags and the routing trace).
     *
     * @param conversationId the conversation
     * @return a future of the record
     */
    public CompletableFuture<Map<String, Object>> info(long conversationId) {
        return outcome(new Frame.ConversationInfo(conversationId)).thenApply(Outcome::detail);
    }

    // --- events ---------------------------------------------------------------------------------------------

    /**
     * The next queue update or sentiment score, waiting at most {@code timeout}.
     *
     * @param timeout how long to wait, or null for ever
     * @return the event, or null after the timeout
     * @throws InterruptedException when the calling thread is interrupted
     */
    public ServiceEvent nextEvent(Duration timeout) throws InterruptedException {
        lock.lockInterruptibly();
        try {
            long left = timeout == null ? -1 : timeout.toNanos();
            while (events.isEmpty()) {
                if (timeout == null) {
                    eventReady.await();
                } else {
                    if (left <= 0) {
                        return null;
                    }
                    left = eventReady.awaitNanos(left);
                }
            }
            return events.pollFirst();
        } finally {
            lock.unlock();
        }
    }

    // --- from the client (I/O thread) -----------------------------------------------------------------------

    void onFrame(Link link, Frame frame) {
        if (frame instanceof Frame.QueuePosition q) {
            push(new ServiceEvent.QueueUpdate(q.conversationId(), q.group(), q.position(), q.waiting()));
            return;
        }
        if (frame instanceof Frame.Sentiment s) {
            push(new ServiceEvent.SentimentScore(s.conversationId(), s.seq(), s.scorePermille()));
            return;
        }
        if (frame instanceof Frame.Opened || frame instanceof Frame.Result || frame instanceof Frame.SearchResult) {
            Object found = link.requests.remove(frame.requestId());
            if (found instanceof Request r) {
                r.future.complete(frame);
            }
        }
    }

    boolean onError(Object found, int code, String reason) {
        if (!(found instanceof Request r)) {
            return false;
        }
        r.future.completeExceptionally(new RequestRefusedException(code, reason));
        return true;
    }

    void onLinkLost(Link link) {
        for (Request r : new ArrayList<>(pending)) {
            if (r.link == link) {
                r.future.completeExceptionally(new ConnectionLostException(KefuException.NO_CODE,
                        "connection lost before the answer"));
            }
        }
    }

    void fail(KefuException error) {
        for (Request r : new ArrayList<>(pending)) {
            r.future.completeExceptionally(error);
        }
    }

    // --- internals ------------------------------------------------------------------------------------------

    private void push(ServiceEvent event) {
        lock.lock();
        try {
            if (events.size() >= MAX_EVENTS) {
                events.pollFirst();
            }
            events.addLast(event);
            eventReady.signalAll();
        } finally {
            lock.unlock();
        }
    }

    private CompletableFuture<Outcome> outcome(Frame frame) {
        return request(frame, REQUEST_TIMEOUT).thenApply(ServiceApi::toOutcome);
    }

    private CompletableFuture<Frame> request(Frame unlabelled, Duration timeout) {
        KefuException refused = client.openError();
        if (refused != null) {
            return CompletableFuture.failedFuture(refused);
        }
        Request request = new Request();
        IoLoop loop = client.loop();
        loop.execute(() -> {
            Link link = client.currentLink();
            if (link == null || !link.usable()) {
                request.future.completeExceptionally(new ConnectionLostException(KefuException.NO_CODE,
                        "not connected"));
                return;
            }
            request.link = link;
            request.requestId = link.nextRequestId();
            link.requests.put(request.requestId, request);
            pending.add(request);
            request.future.whenComplete((r, e) -> pending.remove(request));
            IoLoop.Timer timer = loop.schedule(timeout.toNanos() / 1e9, () -> {
                link.requests.remove(request.requestId);
                request.future.completeExceptionally(new KefuTimeoutException(KefuException.NO_CODE,
                        frameName(unlabelled) + " not answered in time"));
            });
            request.future.whenComplete((r, e) -> timer.cancel());
            link.send(withRequestId(unlabelled, request.requestId));
        });
        return request.future.copy();
    }

    private static String frameName(Frame frame) {
        return frame.getClass().getSimpleName();
    }

    static Frame withRequestId(Frame f, long id) {
        if (f instanceof Frame.AgentStatus x) {
            return new Frame.AgentStatus(id, 0, x.status());
        } else if (f instanceof Frame.OpenConversation x) {
            return new Frame.OpenConversation(id, 0, x.clientRef(), x.customer(), x.group(), x.attributes(),
                    x.firstMessage());
        } else if (f instanceof Frame.Transfer x) {
            return new Frame.Transfer(id, 0, x.conversationId(), x.expectOwner(), x.toAgent(), x.toGroup(), x.note());
        } else if (f instanceof Frame.EndConversation x) {
            return new Frame.EndConversation(id, 0, x.conversationId(), x.reason());
        } else if (f instanceof Frame.Watch x) {
            return new Frame.Watch(id, 0, x.conversationId(), x.on());
        } else if (f instanceof Frame.DraftDecision x) {
            return new Frame.DraftDecision(id, 0, x.conversationId(), x.draftSeq(), x.action(), x.text());
        } else if (f instanceof Frame.Search x) {
            return new Frame.Search(id, 0, x.query(), x.limit());
        } else if (f instanceof Frame.ConversationInfo x) {
            return new Frame.ConversationInfo(id, 0, x.conversationId());
        }
        throw new IllegalArgumentException("not a service request: " + frameName(f));
    }

    private static RequestRefusedException unexpected(Frame answer) {
        return new RequestRefusedException(Codes.INTERNAL_ERROR, "unexpected answer " + frameName(answer));
    }

    static Outcome toOutcome(Frame answer) {
        if (!(answer instanceof Frame.Result r)) {
            throw unexpected(answer);
        }
        Map<String, Object> detail = Map.of();
        if (r.detail().length > 0) {
            try {
                if (Json.parse(r.detail()) instanceof Map<?, ?> m) {
                    @SuppressWarnings("unchecked")
                    Map<String, Object> typed = (Map<String, Object>) m;
                    detail = typed;
                }
            } catch (IllegalArgumentException e) {
                detail = Map.of();
            }
        }
        if (r.status() != Codes.OK) {
            Object reason = detail.get("reason");
            throw new RequestRefusedException(r.status(), reason == null ? "" : reason.toString());
        }
        return new Outcome(r.conversationId(), r.seq(), detail);
    }
}
