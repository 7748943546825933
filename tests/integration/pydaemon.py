"""A one-node atlasd for the Python tests (doc_examples_test, python_client_test,
console_test): started in a scratch directory, stopped and removed on exit (kept when a test
failed)."""
import os
import re
import subprocess
import tempfile
import time


class Daemon:
    def __init__(self, bin_dir, prefix, extra_args=()):
        self.work = tempfile.mkdtemp(prefix=prefix)
        self.sock = os.path.join(self.work, "atlas.sock")
        self._log = open(os.path.join(self.work, "atlasd.log"), "w")
        self._proc = subprocess.Popen(
            [os.path.join(bin_dir, "atlasd"), "--data-dir", os.path.join(self.work, "data"),
             "--socket", self.sock, "--region", "us-east", "--node-name", "n1", "--listen",
             "127.0.0.1:0", "--http-listen", "127.0.0.1:0", *extra_args],
            stdout=self._log, stderr=self._log)
        for _ in range(100):
            if os.path.exists(self.sock):
                break
            time.sleep(0.1)

    def https_port(self):
        """The HTTPS port it picked (from its start-up line)."""
        for _ in range(100):
            with open(os.path.join(self.work, "atlasd.log")) as f:
                m = re.search(r"HTTPS on port (\d+)", f.read())
            if m:
                return int(m.group(1))
            time.sleep(0.1)
        raise RuntimeError("atlasd did not report its HTTPS port")

    def data_file(self, name):
        return os.path.join(self.work, "data", name)

    def stop(self, keep=False):
        self._proc.terminate()
        self._proc.wait(timeout=30)
        self._log.close()
        if keep:
            print("kept " + self.work)
        else:
            subprocess.run(["rm", "-rf", self.work])
