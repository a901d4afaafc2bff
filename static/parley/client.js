// Parley room client: one live WebSocket per room with no gap, no duplicate, in order.
//
// - Every message.new carries the message's seq, and every live frame about a message (new,
//   edited, deleted) the room's change number. A change at or below the last one seen is a
//   duplicate and dropped; one beyond last+1 means the live path lost something, so the client
//   asks the server to replay ({"type": "sync"}) and drops the early frame (the replay includes it).
// - Room events (member.joined, member.left, room.updated) take the room's change numbers too:
//   live and replayed they are counted exactly like edits, and handed to onRoomEvent.
// - Replay frames ("replay": true: after connecting, a sync, or the server filling a gap) are
//   new messages in seq order (no change number), then edits and deletes of older messages and
//   room events in change order (with theirs); sync.done ends every replay with the position.
//   The resume rule: the highest seq you have and the change of the last frame that carried one.
// - A frame type this client does not know is ignored, but a change number it carries is
//   counted like any other (so a newer server's room events cause no false gap).
// - A dropped socket reconnects with exponential back-off and jitter, resuming with
//   ?after_seq=<last seq>&after_change=<last change>. Refusals that cannot change by retrying
//   (4400, 4401, 4403, 4404) stop; any other code is retried, 4408 (the client read too slowly)
//   and 4429 (flood) included.
// - Posts carry a client_id; unacknowledged posts are re-sent after a reconnect and the server
//   creates each at most once.

const FINAL_CLOSE_CODES = new Set([4400, 4401, 4403, 4404]);
const ROOM_EVENTS = new Set(["member.joined", "member.left", "room.updated"]);

export class RoomConnection {
  constructor({ slug, afterSeq = null, onMessage = () => {}, onChange = () => {},
                onRoomEvent = () => {}, onState = () => {}, onError = () => {}, onAck = () => {},
                url = null,
                presence = false, onPresence = () => {}, onTyping = () => {},
                minDelayMs = 250, maxDelayMs = 15000 }) {
    this.slug = slug;
    this.lastSeq = afterSeq;
    this.lastChange = null; // unknown until the first sync.done
    this.onMessage = onMessage; // a new message (or, in a replay, one that changed since)
    this.onChange = onChange; // an edited or deleted message: replace it by seq
    this.onRoomEvent = onRoomEvent; // a member.joined, member.left or room.updated frame
    this.onState = onState;
    this.onError = onError;
    this.onAck = onAck;
    this.presence = presence; // receive who is online and who is typing
    this.onPresence = onPresence; // (usernames) => ...
    this.onTyping = onTyping; // (username) => ...
    this.url = url;
    this.minDelayMs = minDelayMs;
    this.maxDelayMs = maxDelayMs;
    this.unacked = new Map(); // client_id -> frame
    this.attempt = 0;
    this.syncing = false;
    this.stopped = false;
    this.socket = null;
  }

  start() {
    this.stopped = false;
    this._open();
  }

  stop() {
    this.stopped = true;
    if (this.socket) this.socket.close(1000);
  }

  /** Post a message; returns its client_id. Sent now, or once the socket is back. */
  send(body) {
    const clientId = crypto.randomUUID();
    const frame = { type: "message.send", body, client_id: clientId };
    this.unacked.set(clientId, frame);
    this._write(frame);
    return clientId;
  }

  /** Tell the room you are typing (the server forwards it at most every 2 s). Sent at most
   * once a second: every frame counts against the socket's frame rate. */
  typing() {
    const now = Date.now();
    if (now - (this.lastTyping || 0) < 1000) return;
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.lastTyping = now;
      this.socket.send(JSON.stringify({ type: "typing" }));
    }
  }

  _endpoint() {
    const base = this.url || `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;
    let query = this.lastSeq === null ? "" : `?after_seq=${this.lastSeq}`;
    if (this.lastSeq !== null && this.lastChange !== null) query += `&after_change=${this.lastChange}`;
    if (this.presence) query += `${query ? "&" : "?"}presence=1`;
    return `${base}/ws/rooms/${encodeURIComponent(this.slug)}/${query}`;
  }

  _open() {
    this.onState(this.attempt ? "reconnecting" : "connecting");
    const socket = new WebSocket(this._endpoint());
    this.socket = socket;
    this.syncing = true; // the server replays, then says sync.done
    socket.onmessage = (event) => this._receive(JSON.parse(event.data));
    socket.onclose = (event) => this._closed(event);
  }

  _closed(event) {
    this.socket = null;
    if (this.stopped) { this.onState("closed"); return; }
    if (FINAL_CLOSE_CODES.has(event.code)) {
      this.onState("refused");
      this.onError({ code: event.code, detail: event.reason });
      return;
    }
    this.onState("offline");
    const ceiling = Math.min(this.maxDelayMs, this.minDelayMs * 2 ** this.attempt);
    const delay = ceiling / 2 + Math.random() * ceiling / 2;
    this.attempt += 1;
    setTimeout(() => { if (!this.stopped) this._open(); }, delay);
  }

  _write(frame) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN && !this.syncing) {
      this.socket.send(JSON.stringify(frame));
    }
  }

  _receive(frame) {
    switch (frame.type) {
      case "message.new":
      case "message.edited":
      case "message.deleted":
      case "member.joined":
      case "member.left":
      case "room.updated":
        return this._deliver(frame);
      case "sync.done": {
        if (this.lastSeq === null || frame.seq > this.lastSeq) this.lastSeq = frame.seq;
        this.lastChange = frame.change;
        const resend = this.syncing; // the server may also end a catch-up of its own
        this.syncing = false;
        this.attempt = 0;
        this.onState("live");
        if (resend) for (const pending of this.unacked.values()) this._write(pending);
        return;
      }
      case "presence":
        return this.onPresence(frame.online);
      case "typing":
        return this.onTyping(frame.user);
      case "message.ack":
        this.unacked.delete(frame.client_id);
        this.onAck(frame);
        return;
      case "error":
        if (frame.client_id) this.unacked.delete(frame.client_id);
        this.onError(frame);
        return;
      default: // unknown: ignored, but its change (if any) counts like any other
        if (Number.isInteger(frame.change)) return this._deliver(frame);
        return;
    }
  }

  _deliver(frame) {
    const message = frame.message;
    if (frame.replay) {
      // A replay frame: messages after lastSeq in seq order, then changes to older ones (those
      // carry their change number, a safe resume position); sync.done ends the replay.
      if (frame.change !== undefined) this.lastChange = frame.change;
      if (frame.type === "message.new") {
        if (this.lastSeq !== null && message.seq <= this.lastSeq) return;
        this.lastSeq = message.seq;
        return this.onMessage(message);
      }
      return this._changed(frame);
    }
    if (this.lastChange !== null && frame.change <= this.lastChange) return; // duplicate
    if (this.lastChange !== null && frame.change > this.lastChange + 1) {
      // A gap: ask for a replay from what we have, unless one is already under way.
      if (this.socket && this.socket.readyState === WebSocket.OPEN) {
        this.syncing = true;
        this.socket.send(JSON.stringify(
          { type: "sync", after_seq: this.lastSeq, after_change: this.lastChange }));
      }
      return;
    }
    this.lastChange = frame.change;
    if (frame.type === "message.new") {
      if (this.lastSeq !== null && message.seq <= this.lastSeq) return;
      this.lastSeq = message.seq;
      return this.onMessage(message);
    }
    return this._changed(frame);
  }

  /** A change other than a new message, once counted: an edit or delete, or a room event. */
  _changed(frame) {
    if (frame.type === "message.edited" || frame.type === "message.deleted") {
      return this.onChange(frame.type, frame.message);
    }
    if (ROOM_EVENTS.has(frame.type)) return this.onRoomEvent(frame);
  }
}
