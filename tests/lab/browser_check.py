#!/usr/bin/env python3
"""Render an HTML file in headless Chromium and report what the browser saw.

    browser_check.py [--timeout SECONDS] [--dom OUT.html] FILE.html

Prints one JSON object on stdout:
  url        the file:// URL that was loaded
  requests   every URL the page asked for (Network.requestWillBeSent), the
             document itself included: a self-contained page asks for that
             one alone
  errors     console errors, uncaught exceptions and browser log entries of
             level error (a Content-Security-Policy refusal is one)
  dom        facts read from the rendered DOM by DOM_FACTS below (headings,
             section ids, the timeline of `--report-format html`, ...)
Exit status 0 when the page loaded and the facts were read, 1 otherwise
(with the reason on stderr). The checks themselves are the caller's.

Theory of operation: Chromium (`$CHROMIUM`, default `chromium`) runs with
--headless=new and --remote-debugging-pipe, so the DevTools protocol goes over
two pipes (fds 3 and 4, NUL-terminated JSON): no port is opened. It runs in a
network namespace of its own (`unshare --net`: only a loopback that is down),
with --host-resolver-rules mapping every name to nothing, so neither the page
nor the browser's background services can reach any address, on the machine
or off it. A page that tries to fetch something still shows up in `requests`:
the request is announced before it fails. HOME and the profile are a
temporary directory, removed at exit. Everything is bounded by --timeout
(default 60 s; Chromium's start is slow on a loaded machine); on timeout the
browser's process group (started here) is killed.
"""
import argparse
import json
import os
import pathlib
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

# Read in the page after its load event. Generic facts first, then those of
# childflow's report (docs/report.md, "HTML").
DOM_FACTS = r"""
(() => {
  const all = (sel) => [...document.querySelectorAll(sel)];
  const text = (e) => e.textContent.replace(/\s+/g, ' ').trim();
  const rows = all('#timeline-table tbody tr');
  const bar = (tr) => tr.querySelector('.bar');
  const colour = (tr) => bar(tr) ? getComputedStyle(bar(tr)).backgroundColor : null;
  return {
    title: document.title,
    headings: all('h1, h2, h3').map(text),
    sections: all('section').map((s) => s.id),
    scripts: all('script').length,
    body_chars: document.body ? document.body.innerText.length : 0,
    timeline: {
      rows: rows.length,
      kinds: rows.map((tr) => tr.dataset.kind),
      classes: rows.map((tr) => tr.className),
      texts: rows.map(text),
      bars: rows.filter(bar).length,
      bar_widths_px: rows.filter(bar).map((tr) => bar(tr).getBoundingClientRect().width),
      colours: rows.map(colour),
    },
    denials: all('#denials-table tbody tr').map(text),
    top_destinations: all('#top-destinations tbody tr').map(text),
    top_names: all('#top-names tbody tr').map(text),
    text: document.body ? document.body.innerText : '',
  };
})()
"""


class Browser:
    def __init__(self, chromium, deadline):
        self.deadline = deadline
        self.tmp = tempfile.mkdtemp(prefix="cf-browser-")
        to_r, self.to_w = os.pipe()
        self.from_r, from_w = os.pipe()

        def child_fds():
            # dup first: a pipe end may already be fd 3 or 4 (and close-on-exec).
            a, b = os.dup(to_r), os.dup(from_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        env = dict(os.environ, HOME=self.tmp, XDG_CONFIG_HOME=self.tmp, XDG_CACHE_HOME=self.tmp)
        self.stderr_path = os.path.join(self.tmp, "chromium.err")
        cmd = ["unshare", "--net", chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
               "--remote-debugging-pipe", f"--user-data-dir={self.tmp}/profile",
               "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--disable-extensions",
               "--host-resolver-rules=MAP * ~NOTFOUND", "about:blank"]
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(cmd, preexec_fn=child_fds, close_fds=False,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=err, env=env, start_new_session=True)
        os.close(to_r)
        os.close(from_w)
        self.buf = b""
        self.next_id = 0
        self.events = []

    def _recv(self):
        while b"\0" not in self.buf:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from chromium in time")
            ready, _, _ = select.select([self.from_r], [], [], left)
            if not ready:
                continue
            data = os.read(self.from_r, 1 << 16)
            if not data:
                raise EOFError("chromium closed the DevTools pipe: " + self.stderr_tail())
            self.buf += data
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params=None, session=None):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_w, json.dumps(msg).encode() + b"\0")
        while True:
            m = self._recv()
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, method):
        while not any(e.get("method") == method for e in self.events):
            self.events.append(self._recv())

    def stderr_tail(self):
        try:
            return pathlib.Path(self.stderr_path).read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def close(self):
        try:
            if self.proc.poll() is None:
                try:
                    self.call("Browser.close")
                except Exception:
                    pass
                try:
                    self.proc.wait(timeout=max(1.0, min(10.0, self.deadline - time.monotonic())))
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait()
        finally:
            os.close(self.to_w)
            os.close(self.from_r)
            shutil.rmtree(self.tmp, ignore_errors=True)


def errors_of(events):
    out = []
    for e in events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            out.append("Uncaught: " + d.get("exception", {}).get("description", d.get("text", "")))
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            out.append(f"console.{p['type']}: {args}")
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            entry = p["entry"]
            out.append(f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}".strip())
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--dom", help="also write the rendered DOM (outerHTML) here")
    ap.add_argument("file")
    args = ap.parse_args()
    url = pathlib.Path(args.file).resolve().as_uri()
    deadline = time.monotonic() + args.timeout
    chromium = os.environ.get("CHROMIUM", "chromium")
    if not shutil.which(chromium):
        print(f"browser_check: {chromium} not found (scripts/install-deps.sh lab installs it)",
              file=sys.stderr)
        return 1
    b = Browser(chromium, deadline)
    try:
        target = b.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        s = b.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Network", "Runtime", "Log", "Page"):
            b.call(f"{domain}.enable", session=s)
        nav = b.call("Page.navigate", {"url": url}, session=s)
        if nav.get("errorText"):
            raise RuntimeError(f"navigation to {url} failed: {nav['errorText']}")
        b.wait_event("Page.loadEventFired")
        facts = b.call("Runtime.evaluate", {"expression": DOM_FACTS, "returnByValue": True},
                       session=s)
        if "exceptionDetails" in facts:
            raise RuntimeError(f"reading the DOM failed: {facts['exceptionDetails']}")
        if args.dom:
            dom = b.call("Runtime.evaluate", {"expression": "document.documentElement.outerHTML",
                                              "returnByValue": True}, session=s)
            pathlib.Path(args.dom).write_text(dom["result"]["value"])
        # Give late console messages of the load a moment (bounded).
        b.call("Runtime.evaluate", {"expression": "new Promise(r => setTimeout(r, 200))",
                                    "awaitPromise": True}, session=s)
        report = {
            "url": url,
            "requests": [e["params"]["request"]["url"] for e in b.events
                         if e.get("method") == "Network.requestWillBeSent"],
            "errors": errors_of(b.events),
            "dom": facts["result"]["value"],
        }
    except (TimeoutError, EOFError, RuntimeError, OSError) as e:
        print(f"browser_check: {url}: {e}", file=sys.stderr)
        tail = b.stderr_tail()
        if tail:
            print(f"browser_check: chromium's stderr ends with:\n{tail}", file=sys.stderr)
        return 1
    finally:
        b.close()
    json.dump(report, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
