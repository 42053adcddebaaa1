#!/usr/bin/env python3
"""The adversarial cases of issue 33 against a real `attnscope serve` process, each with its outcome.

    scripts/serve_hostile.py build/cli/attnscope HF_MODEL_DIR MINMAX_RUN_DIR

HF_MODEL_DIR: a SMILES model (e.g. tests/fixtures/hf-roberta-tiny/roberta-tiny-mlm); MINMAX_RUN_DIR:
a min/max run with kept checkpoints (e.g. `attnscope train configs/minmax.yaml --set
train.epochs=30 train.keep_every=10 --out runs/mm`). Loopback only; prints one line per case.
"""
import gzip
import json
import os
import socket
import subprocess
import sys
import threading
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Server:
    def __init__(self, exe, model, *extra):
        self.port = free_port()
        self.proc = subprocess.Popen([exe, "serve", model, "--port", str(self.port), *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(600):  # until it answers
            try:
                if self.request(b"GET /api/info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 2)[0] == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("serve exited: " + self.proc.stdout.read())
            time.sleep(0.1)
        raise RuntimeError("serve did not answer")

    def request(self, raw, timeout=10, half_close=False):
        """(status, body, seconds) of the first answer to `raw` on a new connection."""
        t0 = time.time()
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(raw)
            if half_close:
                s.shutdown(socket.SHUT_WR)
            data = b""
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                    if b"\r\n\r\n" in data:
                        head, _, body = data.partition(b"\r\n\r\n")
                        length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                        if length and len(body) >= length[0]:
                            break
            except socket.timeout:
                pass
        if not data:
            return None, b"", time.time() - t0
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), body, time.time() - t0

    def post(self, path, body, extra=b"", **kw):
        if isinstance(body, str):
            body = body.encode()
        raw = (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + extra +
               b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        return self.request(raw, **kw)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)


def show(case, status, body=b"", extra=""):
    msg = ""
    try:
        msg = json.loads(body).get("error", "")[:90]
    except Exception:
        msg = body[:60].decode(errors="replace") if body else "(empty body)"
    print(f"{case:58s} -> {status} {msg} {extra}".rstrip(), flush=True)


def main():
    exe, hf, minmax = sys.argv[1:4]
    s = Server(exe, hf)
    pid = s.proc.pid
    show("1 200,000 nested [ on /api/attention", *s.post("/api/attention", '{"input": ' + "[" * 200000)[:2])
    show("1 150,000 nested objects on /api/molecule", *s.post("/api/molecule", '{"a":' * 150000)[:2])
    s.post("/api/attention", '{"input": "CCO"}')
    before = rss_mb(pid)
    for mb in (50, 300):
        body = gzip.compress(b'{"input": "CCO", "x": "' + b" " * (mb << 20) + b'"}')
        st, b, sec = s.post("/api/attention", body, b"Content-Encoding: gzip\r\n")
        show(f"2 gzip {len(body) // 1024} KB inflating to {mb} MB", st, b, f"({sec:.2f} s, RSS {before:.0f} -> {rss_mb(pid):.0f} MB)")
    second = subprocess.run([exe, "serve", hf, "--port", str(s.port)], capture_output=True, text=True, timeout=120)
    print(f"{'3 second serve on the same port':58s} -> exit {second.returncode}: {second.stderr.strip()[:110]}")

    # 4: 40 connections dripping a header byte a second, then a normal client
    drips = []
    for _ in range(40):
        c = socket.create_connection(("127.0.0.1", s.port))
        c.sendall(b"GET /api/info HTTP/1.1\r\n")
        drips.append(c)
    stop = threading.Event()

    def drip():
        while not stop.is_set():
            for c in drips:
                try:
                    c.send(b"X")
                except OSError:
                    pass
            time.sleep(1)
    t = threading.Thread(target=drip)
    t.start()
    st, b, sec = s.post("/api/attention", '{"input": "c1ccccc1"}')
    show("4 a request beside 40 header drippers (1 byte/s)", st, b, f"(answered in {sec:.2f} s)")
    cut = []
    for c in drips:
        c.settimeout(30)
        t0 = time.time()
        data = c.recv(4096)
        cut.append((data[:12], time.time() - t0))
    stop.set()
    t.join()
    print(f"{'4 the 40 drippers':58s} -> {sorted(set(d[0].decode() for d in cut))} "
          f"after at most {max(d[1] for d in cut):.1f} s more")
    c = socket.create_connection(("127.0.0.1", s.port))
    t0 = time.time()
    c.settimeout(40)
    got = b""
    for ch in b"GET /api/info HTTP/1.1\r\nX-Slow: " + b"a" * 200:
        try:
            c.send(bytes([ch]))
        except OSError:
            break
        c.setblocking(False)
        try:
            got = c.recv(4096)
        except BlockingIOError:
            pass
        c.setblocking(True)
        if got:
            break
        time.sleep(0.5)
    print(f"{'4 one connection dripping headers at 2 bytes/s':58s} -> {got[:12].decode()} after {time.time() - t0:.1f} s")
    c.close()

    # 7, 8
    four = b"".join(b"POST /api/attention HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\n\r\n" + b'{"input":"CCO"}' for _ in range(4))
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
        c.sendall(four)
        data = b""
        try:
            while data.count(b"HTTP/1.1 200") < 4:
                chunk = c.recv(65536)
                if not chunk:
                    break
                data += chunk
        except socket.timeout:
            pass
    print(f"{'7 four pipelined requests on one connection':58s} -> {data.count(b'HTTP/1.1 200')} answers")
    show("8 1e99999", *s.post("/api/attention", '{"input": "CCO", "layer": 1e99999}')[:2])
    show("8 a 400-digit integer", *s.post("/api/attention", '{"input": "CCO", "layer": ' + "9" * 400 + "}")[:2])
    show("8 query 18446744073709551615", *s.post("/api/molecule", '{"input": "CCO", "query": 18446744073709551615}')[:2])
    show("8 a 2,000-character SMILES", *s.post("/api/attention", json.dumps({"input": "C" * 2000}))[:2])
    show('8 {"inputs": "abc"}', *s.post("/api/predict", '{"inputs": "abc"}')[:2])
    show("8 Range: bytes=999999- on /api/info",
         *s.request(b"GET /api/info HTTP/1.1\r\nHost: x\r\nRange: bytes=999999-\r\nConnection: close\r\n\r\n")[:2])
    s.stop()

    for opts in (["--port", "70000"], ["--max-input-chars", "0"], ["--max-input-chars", "-5"], ["--cache-mb", "-1"]):
        r = subprocess.run([exe, "serve", hf, *opts], capture_output=True, text=True, timeout=60)
        print(f"{'9 serve ' + ' '.join(opts):58s} -> exit {r.returncode}: {r.stderr.strip().splitlines()[-1][:100] if r.stderr.strip() else ''}")

    # 6, 10: a min/max run
    m = Server(exe, minmax)
    info = json.loads(m.request(b"GET /api/info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[1])
    print(f"{'6 min/max /api/info checkpoints':58s} -> {[c['name'] for c in info['checkpoints']]}")
    for name in ("epoch-000250.pt", "../config.yaml"):
        show(f"6 checkpoint {name}", *m.post("/api/attention", json.dumps({"input": "3 max 5", "checkpoint": name}))[:2])
    m.post("/api/attention", '{"input": "3 max 5"}')
    warm = rss_mb(m.proc.pid)
    for i in range(3):
        st, body, sec = m.request(b"GET /report HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 120)
    for a in range(20):
        m.post("/api/attention", json.dumps({"input": f"{a} max {31 - a}"}))
    print(f"{'10 min/max: /report x3 + 20 requests':58s} -> RSS {warm:.0f} -> {rss_mb(m.proc.pid):.0f} MB "
          f"(report {len(body) / 1e6:.1f} MB, status {st})")
    m.stop()


if __name__ == "__main__":
    main()
