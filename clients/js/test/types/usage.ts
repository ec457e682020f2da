// Compiled (not run) by test/types.test.js with tsc --strict: the public API as the console and the widget use it.
import {
  AuthFailed, Client, ClientEvents, ContentType, CredentialsRefused, ErrorCode, KefuError, Message, OpenedConversation,
  ServiceEvent, SyncResult, decodeSecret, isStaffChannel, newConversationId, staffChannel, webSocketTransport,
} from "../../src/index.js";

export async function usage(secret: string): Promise<bigint> {
  const client = new Client({
    url: "ws://127.0.0.1:7422/ws", appId: "agent-1", appSecret: decodeSecret(secret), serverPins: ["sm2:00"],
    suites: ["national", "international"], explicitAck: true, backoff: { initialMs: 100 },
  });
  const other = new Client({ transport: webSocketTransport("ws://x/ws"), appId: "v", appSecret: secret, serverPins: [] });
  client.on("message", (m: Message) => {
    const event = m.isSystemEvent ? m.event : null;
    if (event && event.event === "assigned") m.ack();
    const n: bigint = m.seq + m.conversationId;
    void [n, m.text, m.sentAt.getTime(), m.metadata["kefu.to"], m.redelivery];
  });
  const off = client.on("disconnected", ({ error }) => void (error instanceof CredentialsRefused));
  off();
  client.on("closed", (e: ClientEvents["closed"]) => void e.error?.codeName);
  client.service.on("event", (e: ServiceEvent) => {
    if (e.kind === "queue") void e.position;
    else if (e.kind === "sentiment") void e.score;
    else void [e.name, e.staff, e.detail, e.message.seq];
  });
  try {
    await client.connect();
  } catch (e) {
    if (e instanceof AuthFailed || (e instanceof KefuError && e.code === ErrorCode.OVERLOADED)) return 0n;
  }
  const conversation = newConversationId();
  const receipt = await client.send(conversation, "你好", { to: ["bob"], contentType: ContentType.TEXT });
  const page: SyncResult = await client.sync({ conversationId: conversation, afterSeq: 0n, untilSeq: 0n, limit: 50 });
  const opened: OpenedConversation = await client.service.open({ group: "cards", attributes: { vip: "2" }, firstMessage: "hi" });
  await client.service.setStatus("online");
  await client.service.transfer(opened.conversationId, { group: "senior", note: "please" });
  await client.service.watch(opened.conversationId, true);
  await client.service.decideDraft(opened.conversationId, 4n, "edit", "better");
  const hits = await client.service.search("账单", { limit: 5 });
  const info = await client.service.info(opened.conversationId);
  await client.service.end(opened.conversationId, "done");
  await client.close();
  await other.close();
  void [page.more, hits[0]?.snippet, info["owner"], isStaffChannel(staffChannel(opened.conversationId)), client.connected];
  return receipt.seq;
}
