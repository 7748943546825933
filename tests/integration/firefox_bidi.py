"""Headless Firefox driven over WebDriver BiDi (the W3C protocol Firefox serves on
--remote-debugging-port) over tools/browser_ws.py: enough to open a page, read its DOM and
collect its console errors. For console_test.py.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
from browser_ws import WebSocket  # noqa: E402


class Firefox:
    """One headless Firefox with a fresh profile and a BiDi session that accepts the cluster's
    self-signed certificates. Console messages of level error are kept in `errors`."""

    def __init__(self, binary="firefox-esr"):
        self.profile = tempfile.mkdtemp(prefix="atlas-firefox-")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-remote", "--profile", self.profile,
             "--remote-debugging-port", str(port), "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        line = ""
        deadline = time.monotonic() + 60
        while "WebDriver BiDi listening" not in line:
            line = self.proc.stderr.readline()
            if not line and self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("firefox did not start its BiDi server")
        self.ws = WebSocket("127.0.0.1", port, "/session")
        self.next_id = 0
        self.errors = []
        self.call("session.new",
                  {"capabilities": {"alwaysMatch": {"acceptInsecureCerts": True}}})
        self.call("session.subscribe", {"events": ["log.entryAdded"]})
        self.context = self.call("browsingContext.getTree", {})["contexts"][0]["context"]

    def call(self, method, params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("method") == "log.entryAdded":
                entry = msg["params"]
                if entry.get("level") == "error":
                    self.errors.append(entry.get("text", ""))
            elif msg.get("id") == self.next_id:
                if msg.get("type") == "error":
                    raise RuntimeError("%s: %s %s" % (method, msg.get("error"),
                                                      msg.get("message")))
                return msg["result"]

    def open(self, url):
        self.call("browsingContext.navigate",
                  {"context": self.context, "url": url, "wait": "complete"})

    def dom(self):
        r = self.call("script.evaluate",
                      {"expression": "document.documentElement.outerHTML",
                       "target": {"context": self.context}, "awaitPromise": False})
        return r["result"]["value"]

    def close(self):
        try:
            self.ws.close()
        finally:
            self.proc.kill()
            self.proc.wait()
            shutil.rmtree(self.profile, ignore_errors=True)
