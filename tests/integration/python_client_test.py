#!/usr/bin/env python3
"""The Python client (tools/python/atlas_client.py) against a live atlasd: every operation it
offers, its errors, and a contended read-modify-write.

Usage: python_client_test.py BIN_DIR [MODULE_DIR] (MODULE_DIR: where atlas_client.py is, e.g.
the installed copy; default tools/python of this checkout).
"""
import datetime
import os
import sys
import threading
import unittest

from pydaemon import Daemon

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN_DIR = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(ROOT, "build/bin")
sys.path.insert(0, sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "tools", "python"))
import atlas_client  # noqa: E402

UTC = datetime.timezone.utc


class ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.daemon = Daemon(BIN_DIR, "atlas-py.")

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()

    def setUp(self):
        self.db = atlas_client.connect(self.daemon.sock)

    def tearDown(self):
        self.db.close()

    def test_rows_round_trip_as_exact_bytes(self):
        self.db.put("py.bin", b"a\r\n\x00\xff")
        self.db.put("py.text", "héllo")
        self.assertEqual(self.db.get("py.bin"), b"a\r\n\x00\xff")
        self.assertEqual(self.db.get("py.text"), "héllo".encode())
        self.assertIsNone(self.db.get("py.none"))
        row = self.db.info("py.bin")
        self.assertEqual((row.key, row.size, row.worm_until, row.expires), ("py.bin", 5, None, None))
        self.db.delete("py.bin")
        self.assertIsNone(self.db.info("py.bin"))
        self.assertEqual(self.db.welcome.split(" ")[0], "WELCOME")

    def test_if_rev_and_its_error(self):
        self.db.put("cas.a", b"1", if_rev=0)
        rev = self.db.info("cas.a").rev
        with self.assertRaises(atlas_client.ConditionFailed) as e:
            self.db.put("cas.a", b"2", if_rev=0)
        self.assertEqual(e.exception.rev, rev)
        self.assertEqual(e.exception.level, "WARN")
        self.db.delete("cas.a", if_rev=rev)
        self.assertIsNone(self.db.get("cas.a"))

    def test_retention_and_expiry(self):
        until = datetime.datetime(2100, 1, 1, 0, 0, 0, 250000, tzinfo=UTC)
        self.db.put("keep.w", b"x", worm_until=until)
        self.db.put("keep.e", b"y", expire_in=3600)
        self.assertEqual(self.db.info("keep.w").worm_until, until)
        self.assertGreater(self.db.info("keep.e").expires, datetime.datetime.now(UTC))
        with self.assertRaises(atlas_client.PermissionDenied):
            self.db.delete("keep.w")
        with self.assertRaises(ValueError):
            self.db.put("keep.n", b"z", worm_until=datetime.datetime(2100, 1, 1))  # no zone

    def test_transactions_all_or_nothing(self):
        self.db.put("bank.a", b"100")
        value, row, missing = (self.db.txn().get("bank.a").info("bank.a").put("bank.b", b"5")
                               .get("bank.none").commit())
        self.assertEqual((value, row.key, missing), (b"100", "bank.a", None))
        with self.assertRaises(atlas_client.ConditionFailed):
            self.db.txn().put("bank.a", b"0").put("bank.b", b"0", if_rev=99).commit()
        self.assertEqual(self.db.get("bank.a"), b"100")
        with self.assertRaises(atlas_client.AtlasError) as e:
            self.db.txn().put("bank.x", b"1").put("vault.x", b"1").commit()
        self.assertIn("not in one group", e.exception.message)

    def test_update_retries_until_it_wins(self):
        # 4 threads, each its own connection, 25 increments each: no increment is lost.
        def worker():
            with atlas_client.connect(self.daemon.sock) as db:
                for _ in range(25):
                    db.update("ctr.n", lambda v: str(int(v or b"0") + 1).encode(), attempts=1000)
        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(self.db.get("ctr.n"), b"100")
        self.db.update("ctr.n", lambda v: None)  # None deletes
        self.assertIsNone(self.db.get("ctr.n"))

    def test_pipeline_scan_count_and_dump(self):
        commands = [("KEY PUT many.r%04d v%d" % (i, i), None) for i in range(1500)]
        commands.append(("KEY PUT bad", None))
        results = self.db.pipeline(commands)
        self.assertTrue(all(r[-1].text == "OK" for r in results[:-1]))
        self.assertIsInstance(results[-1], atlas_client.AtlasError)
        self.assertEqual(self.db.count("many"), 1500)
        keys = list(self.db.keys("many"))
        self.assertEqual((len(keys), keys[0], keys[-1]), (1500, "many.r0000", "many.r1499"))
        self.assertEqual(self.db.scan("many.r000", limit=3), ["many.r0000", "many.r0001",
                                                              "many.r0002"])
        rows = self.db.dump("many")
        first = next(rows)
        self.db.put("many.r9999", b"after the dump began")  # not in the dump
        rest = list(rows)
        self.assertEqual(len(rest) + 1, 1500)
        self.assertEqual((first.key, first.value, rest[-1].key), ("many.r0000", b"v0",
                                                                  "many.r1499"))
        self.assertEqual(self.db.dump_rev, 1500)

    def test_watch_streams_and_ends_cleanly(self):
        other = atlas_client.connect(self.daemon.sock)
        events = self.db.watch("feed")
        other.put("feed.a", b"1")
        other.delete("feed.a")
        first, second = next(events), next(events)
        self.assertEqual((first.op, first.key, first.value), ("PUT", "feed.a", b"1"))
        self.assertEqual((second.op, second.key, second.rev), ("DEL", "feed.a", first.rev + 1))
        events.close()  # UNWATCH: the connection goes on
        self.assertIsNone(self.db.get("feed.a"))
        resumed = self.db.watch("feed", from_rev=first.rev - 1)
        self.assertEqual(next(resumed).rev, first.rev)
        resumed.close()
        other.close()

    def test_errors_say_what_happened(self):
        with self.assertRaises(atlas_client.AtlasError) as e:
            self.db.call("FROB x")
        self.assertEqual((e.exception.level, e.exception.message), ("WARN",
                                                                    "unknown command 'FROB'"))
        self.db.call("PRINCIPAL ASSUME alice")
        self.db.call("ACL GRANT secret alice PERMS OWNER")
        with atlas_client.connect(self.daemon.sock) as bob:
            bob.call("PRINCIPAL ASSUME bob")
            with self.assertRaises(atlas_client.PermissionDenied):
                bob.get("secret.x")
        self.assertEqual(self.db.get("ok.x"), None)  # still usable after an ERROR


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
