package io.kefu.client;

import io.kefu.protocol.ClientConfig;
import io.kefu.protocol.ClientConnection;
import io.kefu.protocol.ErrorCode;
import io.kefu.protocol.Events;
import io.kefu.protocol.Frame;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.SocketChannel;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;
import java.util.OptionalDouble;
import java.util.concurrent.CompletableFuture;

/**
 * One TCP connection: a non-blocking {@link SocketChannel} driving the sans-IO {@link ClientConnection}.
 *
 * <p>Theory of operation (as clients/python/connection.py): each read feeds the core, hands every event to the
 * owner in order, then writes {@code dataToSend()} once. Frames the owner queues between reads (SENDs, acks) are
 * written by one flush per loop iteration ({@link #scheduleFlush}), so a burst of sends costs one record seal and
 * one write. After every call into the core its timer is re-armed (keepalive PINGs, the handshake deadline).
 *
 * <p>The core reports HandshakeComplete as soon as it has sent CLIENT_FINISHED, before the server has checked the
 * client's credentials. {@link #handshake} therefore completes only with the server's first frame after that (the
 * ticket, or the answer to the SYNC the client sends at once); an AUTH_FAILED arrives instead and fails it.
 *
 * <p>Not thread-safe: the client's I/O thread only.
 */
final class Link implements IoLoop.Ready {
    /** Bytes read per read call. */
    static final int READ_SIZE = 64 << 10;
    /** Bytes queued for the socket above which the owner stops queuing SENDs (resumed once written). */
    static final int WRITE_HIGH = 1 << 20;

    /** What a Link reports to. */
    interface Owner {
        void linkEvent(Link link, Object event);

        void linkFlushing(Link link);

        void linkLost(Link link);
    }

    final Owner owner;
    final IoLoop loop;
    final ClientConnection core;
    final CompletableFuture<Events.HandshakeComplete> handshake = new CompletableFuture<>();
    final Map<Long, Object> requests = new HashMap<>();
    Events.HandshakeComplete completed;
    Events.ConnectionClosed end;
    boolean ready;
    boolean draining;
    boolean readPaused;
    private final ArrayDeque<ByteBuffer> out = new ArrayDeque<>();
    private final ByteBuffer readBuffer = ByteBuffer.allocate(READ_SIZE);
    private long outBytes;
    private SocketChannel channel;
    private SelectionKey key;
    private boolean connected;
    private boolean lost;
    private boolean flushScheduled;
    private long nextRequestId;
    private IoLoop.Timer timer;
    private double timerDeadline = Double.NaN;

    Link(Owner owner, IoLoop loop, ClientConfig config) {
        this.owner = owner;
        this.loop = loop;
        this.core = new ClientConnection(config, Clock.now());
    }

    /** Start connecting; failures end in {@link Owner#linkLost}. */
    void open(InetSocketAddress address, InetSocketAddress localAddress) {
        try {
            channel = SocketChannel.open();
            channel.configureBlocking(false);
            channel.setOption(StandardSocketOptions.TCP_NODELAY, true);
            if (localAddress != null) {
                channel.bind(localAddress);
            }
            if (address.isUnresolved()) {
                throw new IOException("cannot resolve " + address.getHostString());
            }
            key = channel.register(loop.selector(), SelectionKey.OP_CONNECT, this);
            if (channel.connect(address)) {
                onConnected();
            }
        } catch (IOException | RuntimeException e) {
            fail(e);
        }
    }

    /** Handshake done, accepted, not closing, not draining: application frames may be queued. */
    boolean usable() {
        return ready && handshake.isDone() && !handshake.isCompletedExceptionally() && !draining && connectedState()
                && !lost;
    }

    boolean writePaused() {
        return outBytes >= WRITE_HIGH;
    }

    boolean isLost() {
        return lost;
    }

    /** A fresh request id on this connection (never 0, which means "no request"). */
    long nextRequestId() {
        nextRequestId = nextRequestId % 0xFFFF_FFFFL + 1;
        return nextRequestId;
    }

    /** Queue a frame; it is written by the next flush. */
    void send(Frame frame) {
        if (connectedState()) {
            core.send(frame);
            scheduleFlush();
        }
    }

    /** The core takes application frames (handshake done, no CLOSE sent or received). */
    boolean connectedState() {
        return core.state() == ClientConnection.State.CONNECTED;
    }

    /** Flush once at the end of this loop iteration. */
    void scheduleFlush() {
        if (!flushScheduled && !lost) {
            flushScheduled = true;
            loop.defer(this::flush);
        }
    }

    /** Let the owner queue its frames, write everything the core has, close the socket when the core is done. */
    void flush() {
        flushScheduled = false;
        if (lost || !connected) {
            return;
        }
        if (ready && connectedState()) {
            owner.linkFlushing(this);
        }
        byte[] data = core.dataToSend();
        if (data.length > 0) {
            out.addLast(ByteBuffer.wrap(data));
            outBytes += data.length;
            writeOut();
        }
        if (core.isClosed() && out.isEmpty()) {
            lose(null);
            return;
        }
        armTimer();
    }

    /** Flush what is queued, then send CLOSE; the socket closes once it is written. */
    void close(ErrorCode code, String reason) {
        if (lost) {
            return;
        }
        if (!connected) {
            lose(null);
            return;
        }
        flush();
        if (!core.isClosed()) {
            core.close(code, reason);
        }
        flush();
    }

    /** Drop the connection at once (no CLOSE). */
    void abort() {
        lose(null);
    }

    void pauseReading() {
        if (!readPaused && key != null && key.isValid()) {
            readPaused = true;
            key.interestOps(key.interestOps() & ~SelectionKey.OP_READ);
        }
    }

    void resumeReading() {
        if (readPaused && key != null && key.isValid()) {
            readPaused = false;
            key.interestOps(key.interestOps() | SelectionKey.OP_READ);
        }
    }

    @Override
    public void ready(SelectionKey k) {
        try {
            if (k.isConnectable()) {
                if (channel.finishConnect()) {
                    onConnected();
                }
                return;
            }
            if (k.isWritable()) {
                writeOut();
            }
            if (k.isValid() && k.isReadable()) {
                read();
            }
        } catch (IOException | RuntimeException e) {
            fail(e);
        }
    }

    private void onConnected() {
        connected = true;
        key.interestOps(SelectionKey.OP_READ);
        core.connect(Clock.now());
        flush();
    }

    private void read() throws IOException {
        for (int round = 0; round < 4 && !lost; round++) {
            readBuffer.clear();
            int n = channel.read(readBuffer);
            if (n == 0) {
                break;
            }
            if (n < 0) {
                core.receiveData(readBuffer.array(), 0, 0);
                dispatch();
                flush();
                if (!lost) {
                    lose(null);
                }
                return;
            }
            core.receiveData(readBuffer.array(), 0, n, Clock.now());
            dispatch();
            if (readPaused || n < READ_SIZE) {
                break;
            }
        }
        flush();
    }

    private void writeOut() {
        try {
            while (!out.isEmpty()) {
                ByteBuffer head = out.peekFirst();
                int n = channel.write(head);
                outBytes -= n;
                if (head.hasRemaining()) {
                    key.interestOps(key.interestOps() | SelectionKey.OP_WRITE);
                    return;
                }
                out.pollFirst();
            }
            if (key.isValid()) {
                key.interestOps(key.interestOps() & ~SelectionKey.OP_WRITE);
            }
            if (core.isClosed()) {
                lose(null);
            } else if (ready) {
                scheduleFlush(); // the owner may have sends waiting for room
            }
        } catch (IOException e) {
            fail(e);
        }
    }

    private void dispatch() {
        for (Object event : core.eventsReceived()) {
            if (event instanceof Events.HandshakeComplete hc) {
                ready = true;
                completed = hc;
            } else if (event instanceof Events.ConnectionClosed cc) {
                end = cc;
                if (!handshake.isDone()) {
                    handshake.completeExceptionally(Codes.connectError(cc.code().code(), cc.reason()));
                }
            } else if (completed != null && !handshake.isDone()) {
                handshake.complete(completed);
            }
            owner.linkEvent(this, event);
        }
    }

    private void armTimer() {
        OptionalDouble deadline = core.timer();
        if (deadline.isEmpty()) {
            cancelTimer();
            return;
        }
        double at = deadline.getAsDouble();
        if (timer != null) {
            if (timerDeadline == at) {
                return;
            }
            timer.cancel();
        }
        timerDeadline = at;
        timer = loop.schedule(at - Clock.now(), () -> onTimer(at));
    }

    private void cancelTimer() {
        if (timer != null) {
            timer.cancel();
            timer = null;
            timerDeadline = Double.NaN;
        }
    }

    private void onTimer(double deadline) {
        timer = null;
        timerDeadline = Double.NaN;
        if (lost) {
            return;
        }
        if (readPaused) { // the core would count our pause as the server's silence
            timer = loop.schedule(1.0, () -> onTimer(deadline));
            return;
        }
        core.handleTimer(Math.max(Clock.now(), deadline));
        dispatch();
        flush();
    }

    private void fail(Exception e) {
        lose(e);
    }

    private void lose(Exception cause) {
        if (lost) {
            return;
        }
        lost = true;
        cancelTimer();
        if (connected && !core.isClosed()) {
            core.receiveData(new byte[0], 0, 0);
            dispatch();
        }
        if (key != null) {
            key.cancel();
        }
        if (channel != null) {
            try {
                channel.close();
            } catch (IOException ignored) {
                // gone anyway
            }
        }
        out.clear();
        outBytes = 0;
        if (!handshake.isDone()) {
            String why = cause == null ? "connection closed" : cause.toString();
            handshake.completeExceptionally(Codes.connectError(KefuException.NO_CODE,
                    "connection lost during the handshake: " + why));
        }
        owner.linkLost(this);
    }
}
