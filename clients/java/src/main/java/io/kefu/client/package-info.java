/**
 * The kefu client API: {@link io.kefu.client.KefuClient} and its builder, over one NIO thread per client.
 *
 * <p>Built on the sans-IO protocol core in {@code io.kefu.protocol}; this package adds the sockets, the
 * clock, reconnection with backoff, resumption, SYNC after a reconnect and the customer-service requests.
 */
package io.kefu.client;
