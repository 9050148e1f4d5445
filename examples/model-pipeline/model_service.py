#!/usr/bin/env python3
"""A small sentiment "model" for the model_call example: keyword rules with
a confidence, served over HTTP the way Tutti's model_call expects.

    python3 model_service.py --port 8765 [--delay-ms 0]

POST /predict with {"idempotency_key", "rows": [{"text": ...}, ...]} answers
{"results": [{"sentiment": "positive"|"negative", "confidence": 0..1}, ...]}.
An idempotency key seen before gets the answer it got the first time, so a
batch sent again after a crash is not worked twice; one that arrives while
the first is still being worked gets a 409 (try again). GET /calls reports
how many batches were worked, answered from memory or found busy, and every
key received, in order.
"""
import argparse
import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Lock

POSITIVE = {"great", "good", "love", "excellent", "fast", "perfect", "happy", "works"}
NEGATIVE = {"bad", "broken", "slow", "hate", "poor", "refund", "late", "awful"}

DELAY = 0.0
answers = {}
stats = {"worked": 0, "repeated": 0, "busy": 0}
log = []
in_flight = set()
lock = Lock()


def score(text):
    words = {w.strip(".,!?").lower() for w in str(text).split()}
    pos, neg = len(words & POSITIVE), len(words & NEGATIVE)
    if pos == neg:
        return {"sentiment": "positive" if pos else "negative", "confidence": 0.5}
    sentiment = "positive" if pos > neg else "negative"
    return {"sentiment": sentiment, "confidence": round(0.6 + 0.1 * min(abs(pos - neg), 3), 2)}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the caller went away (killed); it sends the batch again

    def do_GET(self):
        if self.path == "/calls":
            with lock:
                self.reply(200, dict(stats, log=log))
        else:
            self.reply(404, {"error": "not found"})

    def do_POST(self):
        if self.path != "/predict":
            return self.reply(404, {"error": "not found"})
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        key = self.headers.get("idempotency-key") or body.get("idempotency_key")
        rows = body.get("rows")
        if not isinstance(rows, list):
            return self.reply(400, {"error": "rows must be a list"})
        with lock:
            log.append(key)
            if key in answers:
                stats["repeated"] += 1
                return self.reply(200, answers[key])
            if key in in_flight:
                # The same batch is being worked for an earlier request.
                stats["busy"] += 1
                return self.reply(409, {"error": "this batch is being worked; send it again later"})
            in_flight.add(key)
        time.sleep(DELAY)
        result = {"results": [score(r.get("text", "")) for r in rows]}
        with lock:
            answers[key] = result
            in_flight.discard(key)
            stats["worked"] += 1
        self.reply(200, result)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--delay-ms", type=int, default=0, help="time each batch takes to work")
    args = p.parse_args()
    DELAY = args.delay_ms / 1000
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"listening on http://127.0.0.1:{args.port}", flush=True)
    server.serve_forever()
