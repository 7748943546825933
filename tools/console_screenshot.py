#!/usr/bin/env python3
"""A screenshot of the console after it has run for a while in real time (docs/console.md).

  tools/console_screenshot.py https://127.0.0.1:7480/ out.png [--seconds 30] [--size 1400x1500]

Chromium's --screenshot takes the picture at once (or after virtual time, which runs ahead of
the nodes' clocks), so the charts would be empty. This drives headless Chromium over the
DevTools protocol instead: open the page, wait in real time, capture. Python's standard
library only (the WebSocket is tools/browser_ws.py).
"""
import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser_ws import WebSocket  # noqa: E402


class DevTools:
    """One WebSocket connection to a DevTools target; call() sends a command, returns its result."""

    def __init__(self, ws_url):
        host_port, path = ws_url[len("ws://"):].split("/", 1)
        host, port = host_port.split(":")
        self.ws = WebSocket(host, int(port), "/" + path, timeout=60)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError("%s: %s" % (method, reply["error"]))
                return reply["result"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("out")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--size", default="1400x1500")
    args = ap.parse_args()
    width, height = (int(x) for x in args.size.split("x"))
    profile = tempfile.mkdtemp(prefix="atlas-screenshot-")
    chromium = subprocess.Popen(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--hide-scrollbars", "--ignore-certificate-errors", "--remote-debugging-port=0",
         "--user-data-dir=" + profile, "--window-size=%d,%d" % (width, height), "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = os.path.join(profile, "DevToolsActivePort")
        for _ in range(100):
            if os.path.exists(port_file) and open(port_file).read().count("\n") >= 1:
                break
            time.sleep(0.1)
        port = int(open(port_file).read().split("\n")[0])
        with urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port) as r:
            page = next(t for t in json.load(r) if t["type"] == "page")
        tools = DevTools(page["webSocketDebuggerUrl"])
        tools.call("Page.enable")
        tools.call("Page.navigate", url=args.url)
        time.sleep(args.seconds)
        shot = tools.call("Page.captureScreenshot", format="png")
        with open(args.out, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        print("wrote %s after %.0f s" % (args.out, args.seconds))
    finally:
        chromium.terminate()
        chromium.wait(timeout=30)
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
