"""A client for atlasd's Unix socket, for ops scripts: the standard library only.

The same operations as the C++ client (socketproto/client.h): connect and handshake, commands
and their frames, blobs (values travel as exact bytes), tagged pipelining, transactions,
read-modify-write with IF REV and retries, WATCH streams, table dumps, and errors as
exceptions that say what happened. The protocol is docs/protocol.md.

    import atlas_client
    with atlas_client.connect("/run/atlasd/atlas.sock") as db:
        db.put("users.alice", b"hello")
        db.update("counters.visits", lambda v: str(int(v or b"0") + 1).encode())
        for row in db.dump("users"):
            print(row.key, row.rev, row.value)
"""
import datetime
import socket

__all__ = ["connect", "Client", "Row", "Event", "Frame", "Txn", "Watch", "AtlasError", "ConditionFailed",
           "PermissionDenied", "Unavailable", "ProtocolError"]


class AtlasError(Exception):
    """An ERROR frame: `level` is WARN (the connection carries on) or FATAL (it is closed)."""

    def __init__(self, level, message):
        super().__init__(message)
        self.level, self.message = level, message


class ConditionFailed(AtlasError):
    """IF REV did not hold: `rev` is the row's revision the server saw (0: absent)."""

    def __init__(self, level, message):
        super().__init__(level, message)
        self.rev = int(message.rsplit(" ", 1)[1]) if message.rsplit(" ", 1)[-1].isdigit() else 0


class PermissionDenied(AtlasError):
    """The principal may not do this (an ACL, WORM retention or a setting refused it)."""


class Unavailable(AtlasError):
    """No quorum, a timeout, or an outcome that is unknown: a write may or may not have applied."""


class ProtocolError(Exception):
    """The connection can no longer be used: closed, or bytes that are not the protocol."""


def _error(text):
    level, _, message = text[len("ERROR "):].partition(" ")
    if "condition failed" in message:
        return ConditionFailed(level, message)
    if message.startswith("permission denied") or "WORM-protected" in message:
        return PermissionDenied(level, message)
    if (message.startswith(("quorum unavailable", "timeout", "node busy"))
            or "outcome unknown" in message):
        return Unavailable(level, message)
    return AtlasError(level, message)


def _instant(text):
    """An RFC 3339 instant of a ROW line as an aware datetime; None for '-'."""
    if text in ("", "-"):
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _rfc3339(when):
    if when.tzinfo is None:
        raise ValueError("an instant needs a time zone (datetime.timezone.utc)")
    utc = when.astimezone(datetime.timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (utc.microsecond // 1000)


def _duration(seconds):
    """A whole number of seconds as the protocol's duration (e.g. 90s)."""
    if seconds != int(seconds) or seconds <= 0:
        raise ValueError("a duration is a whole number of seconds > 0")
    return "%ds" % int(seconds)


class Frame:
    """One reply frame: its text without tag and terminator, the tag, a blob's bytes."""
    __slots__ = ("text", "tag", "blob")

    def __init__(self, text, tag=None, blob=None):
        self.text, self.tag, self.blob = text, tag, blob

    @property
    def final(self):
        return self.text == "OK" or self.text.startswith("ERROR ")

    def __repr__(self):
        return "Frame(%r, tag=%r, blob=%r)" % (self.text, self.tag, self.blob)


class Row:
    """A row as KEY INFO and TABLE DUMP describe it (value: None when not read)."""
    __slots__ = ("key", "rev", "size", "worm_until", "expires", "value")

    def __init__(self, line, value=None):
        fields = dict(f.split("=", 1) for f in line.split(" ")[1:] if "=" in f)
        self.key, self.rev, self.size = fields["key"], int(fields["rev"]), int(fields["size"])
        self.worm_until = _instant(fields.get("worm_until", "-"))
        self.expires = _instant(fields.get("expires", "-"))
        self.value = value

    def __repr__(self):
        return "Row(%s rev=%d size=%d)" % (self.key, self.rev, self.size)


class Event:
    """A WATCH event: `op` is 'PUT' (with `value`) or 'DEL'."""
    __slots__ = ("rev", "op", "key", "value")

    def __init__(self, rev, op, key, value=None):
        self.rev, self.op, self.key, self.value = rev, op, key, value

    def __repr__(self):
        return "Event(%d %s %s)" % (self.rev, self.op, self.key)


def _put_line(key, value, if_rev=None, worm_until=None, worm_ttl=None, expire_at=None,
              expire_in=None):
    """KEY BLOB SET with its options, and the payload: values always go as exact bytes."""
    if isinstance(value, str):
        value = value.encode()
    parts = ["KEY BLOB SET", key]
    if if_rev is not None:
        parts += ["IF REV", str(int(if_rev))]
    if worm_until is not None:
        parts += ["WORM EXPIRES", _rfc3339(worm_until)]
    elif worm_ttl is not None:
        parts += ["WORM TTL", _duration(worm_ttl)]
    if expire_at is not None:
        parts += ["EXPIRE AT", _rfc3339(expire_at)]
    elif expire_in is not None:
        parts += ["EXPIRE", _duration(expire_in)]
    parts.append(str(len(value)))
    return " ".join(parts), value


class Txn:
    """Commands committed together, all or none, in one table or TABLE GROUP (TXN <n>).

    commit() returns what the reads gave, in order: bytes or None for get(), a Row or None for
    info(). A refusal of any command raises, and nothing was written."""

    def __init__(self, client):
        self._client, self._lines, self._reads = client, [], []

    def get(self, key):
        self._lines.append(("KEY BLOB GET " + key, None))
        self._reads.append("get")
        return self

    def info(self, key):
        self._lines.append(("KEY INFO " + key, None))
        self._reads.append("info")
        return self

    def put(self, key, value, **options):
        self._lines.append(_put_line(key, value, **options))
        return self

    def delete(self, key, if_rev=None):
        self._lines.append(("KEY DEL " + key + ("" if if_rev is None else " IF REV %d" % if_rev),
                            None))
        return self

    def commit(self):
        if not self._lines:
            return []
        body = b"".join(line.encode() + b"\r\n" + (blob or b"") for line, blob in self._lines)
        frames = self._client.call("TXN %d" % len(self._lines), body)
        results = []
        for kind, frame in zip(self._reads, frames[:-1]):
            if kind == "get":
                results.append(frame.blob if frame.text.startswith("BLOB ") else None)
            else:
                results.append(Row(frame.text) if frame.text.startswith("ROW ") else None)
        return results


class Client:
    """One connection. Not thread-safe: one per thread."""

    def __init__(self, path, client_id="atlas-python", timeout=10.0):
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        self._sock.connect(path)
        self._in = self._sock.makefile("rb")
        self._stash = []  # frames of other tags, read while waiting for one
        self._tags = 0
        self.welcome = self._line()
        if not self.welcome.startswith("WELCOME "):
            raise ProtocolError("unexpected greeting: %r" % self.welcome[:200])
        self._sock.sendall(b"HELLO 1.0 clientId=" + client_id.encode() + b"\r\n")
        ready = self._line()
        if ready != "READY":
            raise ProtocolError("handshake refused: %r" % ready[:200])

    def close(self):
        self._in.close()
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- frames ------------------------------------------------------------------------------
    def _line(self):
        raw = self._in.readline()
        if not raw.endswith(b"\n"):
            raise ProtocolError("connection closed by the server")
        return raw.rstrip(b"\r\n").decode("utf-8", "replace")

    def _exactly(self, n):
        data = self._in.read(n)
        if data is None or len(data) != n:
            raise ProtocolError("connection closed by the server")
        return data

    def read_frame(self):
        """The next frame off the wire (blobs and WATCH PUT events with their bytes)."""
        if self._stash:
            return self._stash.pop(0)
        text, tag = self._line(), None
        if text.startswith("[ID:") and "] " in text:
            tag, text = text[4:text.index("] ")], text[text.index("] ") + 2:]
        frame = Frame(text, tag)
        if text.startswith("BLOB ") or (text.startswith("EVENT ") and " PUT " in text):
            frame.blob = self._exactly(int(text.rsplit(" ", 1)[1]))
        return frame

    def _reply(self, tag):
        """Every frame of the reply to `tag` (None: untagged), through its OK or ERROR."""
        frames, others = [], []
        while True:
            frame = self.read_frame()
            fatal = frame.text.startswith("ERROR FATAL") and frame.tag is None
            if frame.tag != tag and not fatal:
                others.append(frame)
                continue
            frames.append(frame)
            if frame.final:
                break
        self._stash = others + self._stash
        return frames

    def call(self, line, blob=None):
        """Sends one command (`blob`: the payload of a KEY BLOB SET or TXN body) and returns its
        frames through the final OK; raises the ERROR as an exception."""
        self._sock.sendall(line.encode() + b"\r\n" + (blob or b""))
        frames = self._reply(None)
        if frames[-1].text != "OK":
            raise _error(frames[-1].text)
        return frames

    def pipeline(self, commands, window=256):
        """Sends every (line, blob), tagged, up to `window` in flight (the server takes 1,024
        per connection), and returns each one's frames (or its AtlasError) in order."""
        commands, results, in_flight, sent = list(commands), [], [], 0
        while len(results) < len(commands):
            out = []
            while sent < len(commands) and len(in_flight) < window:
                self._tags += 1
                tag = "p%d" % self._tags
                line, blob = commands[sent]
                out.append(("[ID:%s] %s" % (tag, line)).encode() + b"\r\n" + (blob or b""))
                in_flight.append(tag)
                sent += 1
            if out:
                self._sock.sendall(b"".join(out))
            frames = self._reply(in_flight.pop(0))
            results.append(frames if frames[-1].text == "OK" else _error(frames[-1].text))
        return results

    # -- rows --------------------------------------------------------------------------------
    def get(self, key):
        """The value's bytes, or None."""
        frame = self.call("KEY BLOB GET " + key)[0]
        return frame.blob if frame.text.startswith("BLOB ") else None

    def info(self, key):
        """The row's revision, size, retention and expiry (a Row without value), or None."""
        frame = self.call("KEY INFO " + key)[0]
        return Row(frame.text) if frame.text.startswith("ROW ") else None

    def put(self, key, value, **options):
        """Writes bytes (or str, as UTF-8). Options: if_rev, worm_until or worm_ttl (seconds),
        expire_at (aware datetime) or expire_in (seconds)."""
        self.call(*_put_line(key, value, **options))

    def delete(self, key, if_rev=None):
        self.call("KEY DEL " + key + ("" if if_rev is None else " IF REV %d" % if_rev))

    def txn(self):
        return Txn(self)

    def update(self, key, fn, attempts=16):
        """Read-modify-write: fn(current bytes or None) gives the new value (None: delete);
        written only if nobody wrote the row meanwhile (IF REV), retried up to `attempts`
        times. Returns the value written."""
        for _ in range(attempts):
            value, row = self.txn().get(key).info(key).commit()
            new = fn(value)
            rev = row.rev if row else 0
            try:
                if new is None:
                    self.delete(key, if_rev=rev)
                else:
                    self.put(key, new, if_rev=rev)
                return new
            except ConditionFailed:
                continue
        raise ConditionFailed("WARN", "update of '%s': still contended after %d attempts"
                              % (key, attempts))

    def scan(self, range_, limit=1000, after=None):
        """Keys of a table or row prefix, one page (KEYS:<n> ...)."""
        line = "SCAN %s LIMIT %d" % (range_, limit) + (" AFTER " + after if after else "")
        return [f.text for f in self.call(line)[1:-1]]

    def keys(self, range_):
        """Every key of a table or row prefix, page by page."""
        after = None
        while True:
            page = self.scan(range_, 1000, after)
            yield from page
            if len(page) < 1000:
                return
            after = page[-1]

    def count(self, range_):
        return int(self.call("COUNT " + range_)[0].text.split(":", 1)[1])

    def dump(self, table):
        """The table's rows (Row, with value) as of one revision: TABLE DUMP pages. The revision
        is the `dump_rev` attribute of this client once the first page is read."""
        line = "TABLE DUMP " + table
        while True:
            frames = self.call(line)
            head = dict(f.split("=", 1) for f in frames[0].text.split(" ")[1:])
            self.dump_rev = int(head["rev"])
            rows = frames[1:-1]
            for i in range(0, len(rows) - 1, 2):
                yield Row(rows[i].text, rows[i + 1].blob)
            if head["more"] != "1" or not rows:
                return
            line = "TABLE DUMP %s AT %d AFTER %s" % (table, self.dump_rev,
                                                    Row(rows[-2].text).key)

    # -- WATCH -------------------------------------------------------------------------------
    def watch(self, range_, from_rev=None):
        """Events of a table or row prefix as they commit, after `from_rev` if given (else
        after the latest revision: its `rev`). Iterate it; close() ends the watch (UNWATCH) and
        the connection is usable again. One watch at a time per client."""
        self._tags += 1
        return Watch(self, "w%d" % self._tags, range_, from_rev)

    def _next_of(self, tag):
        while True:
            frame = self.read_frame()
            if frame.tag == tag or (frame.tag is None and frame.text.startswith("ERROR FATAL")):
                return frame
            self._stash.append(frame)


class Watch:
    """A WATCH in progress (Client.watch): an iterator of Event."""

    def __init__(self, client, tag, range_, from_rev):
        self._client, self._tag, self._ended = client, tag, False
        line = "[ID:%s] WATCH %s" % (tag, range_)
        if from_rev is not None:
            line += " FROM %d" % from_rev
        client._sock.sendall(line.encode() + b"\r\n")
        first = client._next_of(tag)
        if first.text.startswith("ERROR"):
            raise _error(first.text)
        if not first.text.startswith("WATCHING "):
            raise ProtocolError("unexpected reply to WATCH: %r" % first.text[:200])
        self.rev = int(first.text.split(" ")[1])

    def __iter__(self):
        return self

    def __next__(self):
        while not self._ended:
            frame = self._client._next_of(self._tag)
            if frame.final:
                self._ended = True
                if frame.text != "OK":
                    raise _error(frame.text)
                break
            parts = frame.text.split(" ")
            if parts[0] == "EVENT":
                return Event(int(parts[1]), parts[2], parts[3], frame.blob)
        raise StopIteration

    def close(self):
        """UNWATCH; the watch's last frames and UNWATCH's own OK are read here."""
        if self._ended:
            return
        self._ended = True
        client = self._client
        client._sock.sendall(("UNWATCH %s\r\n" % self._tag).encode())
        watch_done = unwatch_done = False
        while not (watch_done and unwatch_done):
            frame = client.read_frame()
            if frame.tag == self._tag:
                watch_done = frame.final
            elif frame.tag is None and frame.final:
                unwatch_done = True
                if frame.text != "OK":
                    raise _error(frame.text)
            else:
                client._stash.append(frame)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def connect(path, client_id="atlas-python", timeout=10.0):
    """A Client connected to the node's socket (e.g. /run/atlasd/atlas.sock)."""
    return Client(path, client_id, timeout)
