#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_socket_parser to corpus/socket_parser/ (docs/protocol.md).

Each file is: one header byte (bits 0-2: number of chunk-size bytes that follow, bits 3-4: limits
profile; see fuzz_socket_parser.cc), the chunk sizes, then the client byte stream. Headers are
printable so that the files stay readable: ' ' = byte-at-a-time with the default limits (line
4096, blob 65536), '!'..'\\'' = 1..7 chunk sizes, '(' = profile 1 (line 64, blob 1024),
'0' = profile 2 (line 8, blob 16), '8' = profile 3 (line 4096, blob 0).
Crash reproducers found by the fuzzer are added next to these files by hand (crash-<sha1>).
"""
import os

HELLO = b"HELLO 1.0 clientId=fuzz\r\n"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "socket_parser")


def crlf(*lines):
    return b"".join(l + b"\r\n" for l in lines)


def lf(*lines):
    return b"".join(l + b"\n" for l in lines)


SEEDS = {
    "key_get_put_del_crlf": b" " + HELLO + crlf(
        b"KEY PUT users.alice hello  world ", b"KEY GET users.alice", b"key get users.alice",
        b"KEY SET users.bob v", b"KEY DEL users.alice", b"KEY DEL users.missing"),
    "key_lf_only": b"!\x02" + b"HELLO 1.0 c\n" + lf(
        b"KEY PUT t.k v", b"KEY GET t.k", b"Key Del t.k"),
    "tagged_requests": b"#\x00\x06\x1f" + HELLO + crlf(
        b"[ID:1] KEY PUT bench.k1 value-1", b"[ID:a-b_c] KEY GET bench.k1",
        b"[id:2] SCAN bench", b"  [ID:3]KEY DEL bench.k1", b"[ID:~!@#$%^&*()] PRINCIPAL WHOAMI"),
    "bad_tags": b" " + HELLO + crlf(
        b"[ID:] KEY GET t.k", b"[ID:x KEY GET t.k", b"[ID:" + b"x" * 65 + b"] KEY GET t.k",
        b"[ID:\x7f] KEY GET t.k", b"[ID:1]", b"[ID:1] [ID:2] KEY GET t.k"),
    "blob_set_get": b"\"\x03\x40" + HELLO + b"KEY BLOB SET files.a 12\r\nline1\r\nline2" +
        crlf(b"KEY BLOB GET files.a", b"[ID:7] KEY BLOB SET files.b 3") + b"a\nb" +
        crlf(b"key blob get files.b"),
    "blob_zero_length": b" " + HELLO + b"KEY BLOB SET t.empty 0\r\nKEY GET t.empty\r\n",
    "blob_split_payload": b"!\x00" + HELLO + b"KEY BLOB SET t.x 5\r\n\r\n\r\n\nKEY GET t.x\r\n",
    "blob_bad_length_negative": b" " + HELLO + crlf(b"KEY BLOB SET t.x -1", b"KEY GET t.x"),
    "blob_bad_length_text": b" " + HELLO + crlf(b"KEY BLOB SET t.x 12abc"),
    "blob_bad_length_plus": b" " + HELLO + crlf(b"[ID:9] KEY BLOB SET t.x +3") + b"abc",
    "blob_length_overflow": b" " + HELLO + crlf(b"KEY BLOB SET t.x 99999999999999999999999"),
    "blob_over_limit": b" " + HELLO + crlf(b"KEY BLOB SET t.x 65537") + b"x" * 64,
    "blob_extra_tokens": b" " + HELLO + crlf(b"KEY BLOB SET t.x 2 extra") + b"ab" +
        crlf(b"KEY BLOB SET t.x", b"KEY BLOB", b"KEY BLOB NOPE t.x 1"),
    "line_at_limit_crlf": b"$\xff\xff\xff\x0f" + HELLO + b"KEY PUT t.k " + b"v" * (4096 - 12) +
        b"\r\n" + b"KEY GET t.k\r\n",
    "line_over_limit": b"'\xff\xff\xff\xff\xff\xff\xfe" + HELLO + b"KEY PUT t.k " +
        b"v" * 4100 + b"\r\n",
    "line_over_limit_cr_boundary": b" " + HELLO + b"x" * 4096 + b"\r\r\n",
    "non_utf8_keys": b" " + HELLO + crlf(
        b"KEY GET t.\xff\xfe", b"KEY GET t.\xc0\xaf", b"KEY GET t.\xed\xa0\x80",
        b"KEY GET t.a\xe2\x80\xa8b", b"KEY GET t.\xc2\x85", b"KEY PUT \xf0\x9f\x98\x80.k v",
        b"KEY GET t.\xe2\x82\xac", b"KEY GET t\x01.k", b"KEY GET nodot",
        b"KEY GET t.", b"KEY GET .row", b"KEY GET " + b"t." + b"k" * 1100),
    "scan_count_sample": b" " + HELLO + crlf(
        b"SCAN users", b"SCAN users.al LIMIT 10", b"SCAN users AFTER users.a LIMIT 2",
        b"SCAN users LIMIT x", b"SCAN users LIMIT", b"COUNT users", b"COUNT users.a",
        b"count users.", b"SAMPLE users 3", b"SAMPLE users.a -1", b"SAMPLE", b"SCAN bad!name",
        b"SCAN users FROM x"),
    "principal_acl": b" " + HELLO + crlf(
        b"PRINCIPAL ASSUME alice", b"PRINCIPAL WHOAMI", b"principal assume",
        b"PRINCIPAL ASSUME " + "é".encode() * 257, b"ACL GRANT users bob PERMS READ",
        b"acl grant users bob perms owner", b"ACL REVOKE users bob PERMS WRITE",
        b"ACL GRANT users bob PERMS ALL", b"ACL GRANT users bob READ", b"ACL LIST users",
        b"ACL LIST atlas.nodes", b"PRINCIPAL FORGET", b"ACL SHOW users"),
    "node_quorum_table": b" " + HELLO + crlf(
        b"NODE LIST", b"NODE INFO 1", b"NODE PING 2", b"NODE PING x", b"NODE INFO",
        b"QUORUM INFO users", b"QUORUM INFO atlas.nodes", b"QUORUM SET 1 0", b"QUORUM SET x 1",
        b"QUORUM SET 99999 0", b"TABLE INFO users",
        b"TABLE MOVE users eu-west", b"TABLE MOVE users 3", b"TABLE PIN users us-east",
        b"TABLE PIN users NONE", b"TABLE GROUP users g1", b"TABLE GROUP users none",
        b"TABLE PIN users bad.region", b"TABLE FOO users x", b"TABLE DUMP users",
        b"TABLE DUMP users LIMIT 10", b"TABLE DUMP users AT 7 AFTER users.k LIMIT 2",
        b"TABLE DUMP users AFTER users.k", b"TABLE DUMP users AT x", b"TABLE DUMP users LIMIT 0"),
    "put_options_worm": b" " + HELLO + crlf(
        b"KEY PUT t.k PRINCIPAL alice v", b"KEY PUT t.k WORM TTL 90s v",
        b"KEY PUT t.k WORM TTL 0s v", b"KEY PUT t.k WORM TTL 99999999999999d v",
        b"KEY PUT t.k WORM EXPIRES 2030-01-01T00:00:00Z v",
        b"KEY PUT t.k WORM EXPIRES 2030-01-01T00:00:00.123+02:00 v",
        b"KEY PUT t.k WORM EXPIRES infinite-future v", b"KEY PUT t.k WORM EXPIRES 1969-12-31T23:59:59Z v",
        b"KEY PUT t.k PRINCIPAL bob WORM TTL 2h  spaced   value  ", b"KEY PUT t.k WORM",
        b"KEY PUT t.k PRINCIPAL", b"KEY PUT atlas.nodes x", b"KEY PUT t.k WORM FOR 1d v",
        b"KEY PUT t.k WORM TTL 15m v", b"KEY PUT t.k WORM TTL 5w v"),
    "blank_and_unknown": b" " + b"\r\n \t\r\n" + HELLO + b"\r\n\n \r\n\t\n" + crlf(
        b"FROB", b"KEY", b"KEY FROB t.k", b"\x00\x01\x02", b"\x1b[31mred", b"ERROR FATAL x"),
    "bad_handshake": b" " + crlf(b"HELLO 2.0 x", b"KEY GET t.k"),
    "small_limits_line": b"(" + b"HELLO 1.0 c\r\n" + crlf(b"KEY GET t.k", b"KEY PUT t.k " + b"v" * 60),
    "small_limits_line_lf_one_over": b"(" + b"HELLO 1.0 c\r\n" + b"x" * 65 + b"\n",
    "small_limits_blob": b"0" + b"H 1 c\r\n" + b"KEY BLOB SET t.k 3\r\n",
    # Reproducer (socketproto bug, see git log): the payload of a blob announced behind a
    # malformed tag is framed as command lines, so `KEY DEL t.a` below would run.
    "repro_bad_tag_blob_payload_runs_as_commands": b" " + HELLO + b"[ID:" + b"x" * 65 +
        b"] KEY BLOB SET t.upload 13\r\nKEY DEL t.a\r\n",
    "zero_blob_limit": b"8" + HELLO + crlf(b"KEY BLOB SET t.k 0", b"KEY BLOB SET t.k 1") + b"x",
    # Row revisions, conditions, expiry and transactions (shared/spec/transactions.md).
    "if_rev_info_expire": b" " + HELLO + crlf(
        b"KEY PUT t.k IF REV 0 EXPIRE 90s v", b"KEY INFO t.k", b"KEY DEL t.k IF REV 3",
        b"KEY SET t.k EXPIRE AT 2030-01-01T00:00:00Z WORM TTL 1h IF REV 1 v",
        b"KEY PUT t.k IF REV -1 v", b"KEY PUT t.k EXPIRE 1x v", b"KEY PUT t.k IF only") +
        b"KEY BLOB SET t.b IF REV 0 EXPIRE 1h 2\r\nxy" + crlf(b"KEY BLOB SET t.b IF 2") + b"zz",
    "txn": b"#\x00\x05\x11" + HELLO + crlf(
        b"[ID:t] TXN 3", b"KEY GET t.a", b"KEY SET t.a IF REV 1 2") +
        b"KEY BLOB SET t.b 3\r\nabc" + crlf(b"TXN 2", b"NODE LIST", b"[ID:x] KEY GET t.a",
                                            b"TXN 0", b"TXN 1", b"TXN 1", b"KEY GET t.c",
                                            b"TXN x", b"KEY GET t.d"),
    # Profile 1 (64-byte lines, 1 KiB blobs): 40 lines of 50 bytes are over the limit.
    "txn_over_limit": b"(" + b"HELLO 1.0 c\r\n" + crlf(
        b"TXN 40", *[b"KEY PUT t.a%02d " % i + b"v" * 38 for i in range(40)], b"KEY GET t.a"),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in sorted(SEEDS.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(SEEDS)} seeds to {OUT}")


if __name__ == "__main__":
    main()
