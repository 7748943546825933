#!/usr/bin/env python3
"""The operator's console (docs/console.md) against real daemons.

  console_test.py BIN api       the JSON API, its errors, console-access open/client-cert/off
  console_test.py BIN browser   headless Chromium against a 3-node cluster: the page loads with
                                no console errors, shows the three nodes and the RTT matrix, and
                                a table moved with TABLE MOVE shows its new owner within seconds.
                                Exit 77 (skipped) without chromium.
  console_test.py BIN firefox   the same in headless Firefox (firefox-esr, driven over WebDriver
                                BiDi). Exit 77 (skipped) without it.
"""
import http.client
import json
import os
import random
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pydaemon import Daemon  # noqa: E402
from firefox_bidi import Firefox  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def get(port, path, cert=None):
    """(status, parsed JSON or text, headers) of one GET over TLS, with the node's CA trusted
    loosely (the test checks the console, not the certificate chain)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(*cert)
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read().decode()
    conn.close()
    ctype = r.getheader("Content-Type", "")
    return r.status, (json.loads(body) if ctype.startswith("application/json") else body), r


def atlas(bin_dir, sock, *commands):
    args = [os.path.join(bin_dir, "atlas"), "--socket", sock]
    for c in commands:
        args += ["-c", c]
    return subprocess.run(args, capture_output=True, text=True, timeout=30).stdout


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def test_api(bin_dir):
    d = Daemon(bin_dir, "atlas-console-")
    ok = False
    try:
        port = d.https_port()
        atlas(bin_dir, d.sock, "KEY PUT users.alice 1", "KEY PUT users.bob 2", "KEY PUT t.x 1")
        status, s, _ = get(port, "/v1/status")
        check(status == 200, "status %d" % status)
        check(s["node"] == 1 and len(s["nodes"]) == 1, s)
        n = s["nodes"][0]
        check(n["status"] == "ACTIVE" and n["self"] and n["region"] == "us-east", n)
        check(n["load"]["commands"] >= 3 and len(n["load"]["latency_buckets"]) == 15, n["load"])
        check(n["cert_expires_ms"] > s["time_ms"] + 300 * 86400 * 1000, "certificate expiry")
        check(s["quorum"]["fn"] == 0 and s["quorum"]["zones"][0]["members"] == 1, s["quorum"])
        check({m["table"] for m in s["moves"]} >= {"users", "t"}, s["moves"])

        # The same document over the socket: NODE STATUS, and atlas status --json.
        out = subprocess.run([os.path.join(bin_dir, "atlas"), "--socket", d.sock, "status",
                              "--json"], capture_output=True, text=True, timeout=30)
        check(out.returncode == 0, out.stderr)
        doc = json.loads(out.stdout)
        check(doc["cluster_id"] == s["cluster_id"] and doc["nodes"][0]["id"] == 1, doc)
        check(doc["nodes"][0]["load"]["commands"] >= n["load"]["commands"], "a later report")
        table = subprocess.run([os.path.join(bin_dir, "atlas"), "--socket", d.sock, "status"],
                               capture_output=True, text=True, timeout=30).stdout
        check(re.search(r"\n1 +us-east +ACTIVE .* 20\d\d-\d\d-\d\dT", table), table)

        status, t, _ = get(port, "/v1/tables?limit=1")
        check(status == 200 and t["tables"] == 2 and len(t["busiest"]) == 1, t)
        check(t["busiest"][0]["table"] == "users" and t["busiest"][0]["owner"] == 1, t)
        check(t["by_region"] == {"us-east": 2}, t)
        status, u, _ = get(port, "/v1/tables/users")
        check(status == 200 and u["rows"] == 2 and u["revision"] == 2 and u["owner"] == 1, u)
        check(u["q1"] == [1] and u["q2"] == [1] and u["moves"][0]["table"] == "users", u)
        # No keys or values anywhere in the API.
        for path in ("/v1/status", "/v1/tables", "/v1/tables/users"):
            body = json.dumps(get(port, path)[1])
            check("alice" not in body and "bob" not in body, path + " shows row keys")

        for path, code, text in [("/v1/tables/nope", 404, "no such table"),
                                 ("/v1/tables/a%20b", 400, "table name"),
                                 ("/v1/tables?limit=0", 400, "limit"),
                                 ("/console/nothing.js", 404, "no such page")]:
            status, e, _ = get(port, path)
            check(status == code and text in e["error"], (path, status, e))
        status, page, r = get(port, "/")
        check(status == 200 and "<title>atlasd console</title>" in page, "the page")
        check("default-src 'self'" in r.getheader("Content-Security-Policy", ""), "CSP")
        status, js, r = get(port, "/console/console.js")
        check(status == 200 and r.getheader("Content-Type").startswith("text/javascript"), "js")
        ok = True
    finally:
        d.stop(keep=not ok)

    # console-access off: 404 on every console path; /metrics and /health still served.
    d = Daemon(bin_dir, "atlas-console-off-", ["--console-access", "off"])
    try:
        port = d.https_port()
        for path in ("/", "/v1/status", "/v1/tables"):
            status, e, _ = get(port, path)
            check(status == 404 and "console is off" in e["error"], (path, status))
        check(get(port, "/health")[0] == 200, "health with the console off")
    finally:
        d.stop()

    # console-access client-cert: 403 without a certificate, or with one of another CA.
    d = Daemon(bin_dir, "atlas-console-cert-", ["--console-access", "client-cert"])
    other = Daemon(bin_dir, "atlas-console-other-")
    try:
        port = d.https_port()
        status, e, _ = get(port, "/v1/status")
        check(status == 403 and "client certificate" in e["error"], (status, e))
        foreign = (other.data_file("node.pem"), other.data_file("node-key.pem"))
        check(get(port, "/v1/status", cert=foreign)[0] == 403, "a foreign CA's certificate")
        own = (d.data_file("node.pem"), d.data_file("node-key.pem"))
        status, s, _ = get(port, "/v1/status", cert=own)
        check(status == 200 and s["node"] == 1, (status, s))
        check(get(port, "/health")[0] == 200, "health needs no certificate")
    finally:
        d.stop()
        other.stop()
    print("console api: ok")


def chromium(url, *flags, budget_ms=4000):
    """(DOM after the page's scripts ran, stderr) of one headless Chromium visit."""
    profile = tempfile.mkdtemp(prefix="atlas-chromium-")
    try:
        r = subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--ignore-certificate-errors", "--enable-logging=stderr", "--v=0",
             "--user-data-dir=" + profile, "--virtual-time-budget=%d" % budget_ms, "--dump-dom",
             *flags, url],
            capture_output=True, text=True, timeout=90)
        return r.stdout, r.stderr
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def page_problems(dom, console_errors):
    problems = list(console_errors)
    m = re.search(r'data-errors="(\d+)"', dom)
    if m:
        problems.append("the page counted %s errors" % m.group(1))
    return problems


class ChromiumVisits:
    """Each look at the page is a fresh headless Chromium visit of `budget_ms` virtual time."""

    def look(self, url, budget_ms):
        dom, err = chromium(url, budget_ms=budget_ms)
        return dom, page_problems(dom, [l for l in err.splitlines() if ":CONSOLE" in l])

    def close(self):
        pass


class FirefoxVisits:
    """One Firefox page that stays open (it updates itself); each look waits `budget_ms`."""

    def __init__(self):
        self.firefox = Firefox()
        self.url = None

    def look(self, url, budget_ms):
        if url != self.url:
            self.firefox.open(url)
            self.url = url
        time.sleep(budget_ms / 1000)
        dom = self.firefox.dom()
        return dom, page_problems(dom, self.firefox.errors)

    def close(self):
        self.firefox.close()


def test_browser(bin_dir, browser):
    binary = {"chromium": "chromium", "firefox": "firefox-esr"}[browser]
    if shutil.which(binary) is None:
        print("%s not installed: skipped" % binary)
        return 77
    work = tempfile.mkdtemp(prefix="atlas-console-3-")
    base = random.randrange(20000, 40000, 300)
    env = dict(os.environ, ATLAS_BIN=bin_dir)
    cluster = os.path.join(ROOT, "tools", "cluster")
    ok = False
    visits = None
    try:
        subprocess.run([cluster, "up", "--zones", "1", "--nodes-per-zone", "3", "--dir", work,
                        "--base-port", str(base)], env=env, check=True, capture_output=True,
                       timeout=120)
        ports = []
        for i in (1, 2, 3):  # (the socket answers a moment before HTTPS is up and logged)
            for _ in range(100):
                with open(os.path.join(work, "n%d.log" % i)) as f:
                    m = re.search(r"HTTPS on port (\d+)", f.read())
                if m:
                    break
                time.sleep(0.1)
            check(m, "node %d never logged its HTTPS port" % i)
            ports.append(int(m.group(1)))
        sock = os.path.join(work, "n1", "atlas.sock")
        for i in range(20):
            atlas(bin_dir, sock, "KEY PUT moved.k%d v" % i)
        url = "https://127.0.0.1:%d/" % ports[0]
        # Every node has pinged every other one (the RTT matrix is whole).
        for _ in range(50):
            nodes = get(ports[0], "/v1/status")[1]["nodes"]
            if all(len(n.get("rtts_ms", {})) == 2 for n in nodes):
                break
            time.sleep(0.2)

        # A loaded machine may need more than one look for the page to finish two polls.
        visits = ChromiumVisits() if browser == "chromium" else FirefoxVisits()
        for _ in range(5):
            dom, problems = visits.look(url, 4000)
            check(not problems, "page errors: %s" % problems)
            polls = re.search(r'data-polls="(\d+)"', dom)
            if polls and int(polls.group(1)) >= 2:
                break
        check(polls and int(polls.group(1)) >= 2, "the page never finished two polls: " + dom)
        for i in (1, 2, 3):
            check(re.search(r'<tr data-node="%d">' % i, dom), "node %d in the node table" % i)
            check(re.search(r'<div class="member" data-node="%d">' % i, dom), "node %d's zone" % i)
        cells = re.findall(r'<td data-to="\d"[^>]*>([0-9.]+)</td>', dom)
        check(len(cells) == 6, "RTT matrix: %s" % cells)
        check(re.search(r'data-table="moved" data-owner="1"', dom), "moved owned by node 1")

        atlas(bin_dir, sock, "TABLE MOVE moved 3")
        moved_at = time.monotonic()
        while True:
            dom, problems = visits.look(url, 1500)
            if re.search(r'data-table="moved" data-owner="3"', dom):
                break
            check(time.monotonic() - moved_at < 15, "the page never showed node 3 owning 'moved'")
        print("the page showed the move after %.1f s" % (time.monotonic() - moved_at))
        check(not problems, "page errors after the move: %s" % problems)

        ok = True
    finally:
        if visits:
            visits.close()
        subprocess.run([cluster, "down", "--dir", work], env=env, capture_output=True)
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("kept " + work)
    print("console in %s: ok" % browser)
    return 0


if __name__ == "__main__":
    bin_dir, part = sys.argv[1], sys.argv[2]
    if part == "api":
        sys.exit(test_api(bin_dir) or 0)
    sys.exit(test_browser(bin_dir, "chromium" if part == "browser" else "firefox"))
