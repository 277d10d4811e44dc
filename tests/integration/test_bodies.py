"""Long-context request bodies end to end: delivered byte for byte, inspected
for admission wherever the fields are, and passed on untouched when they are
not valid JSON (the backend answers them in its own words)."""

import hashlib
import json
import unittest

from harness import Client, ClusterTest, metric, render

CLASSES = """
classes:
  interactive: { max_queue: 16, max_wait_ms: 5000, pools: [gold, spot] }
  standard:    { max_queue: 16, max_wait_ms: 5000, pools: [spot] }
"""


def h(key):
    return hashlib.sha256(key.encode()).hexdigest()


TENANTS = f"""
tenants:
  rag:
    keys: [ {{ sha256: "{h('sk-rag')}" }} ]
    default_class: standard
    max_class: interactive
    tokens_per_min: 100000000
"""


def fnv1a64(data):
    x = 0xcbf29ce484222325
    for b in data:
        x = ((x ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{x:016x}"


def chat_body(text_bytes, tail=""):
    text = ("lorem ipsum dolor sit amet, \\\"quoted\\\" \\u00e9\\n " * (text_bytes // 40 + 1))
    body = '{"model":"m","messages":[{"role":"user","content":"' + text[:text_bytes] + '"}]' + tail + "}"
    return body.encode()


class LongContext(ClusterTest):
    def start(self):
        return self.pair(classes=CLASSES, extra=TENANTS + "limits: { max_body_bytes: 8MiB }\n")

    def test_a_4MiB_body_reaches_the_backend_byte_for_byte(self):
        gold, spot, s = self.start()
        body = chat_body(4 << 20, ',"max_tokens":4')
        for framing in ("length", "chunked"):
            c = Client(s.port, timeout=30)
            if framing == "length":
                c.send(render("POST", "/debug/body", body, {"authorization": "Bearer sk-rag"}))
            else:
                chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 65536]), body[i:i + 65536])
                                  for i in range(0, len(body), 65536))
                c.send(render("POST", "/debug/body", None, {"authorization": "Bearer sk-rag",
                                                            "transfer-encoding": "chunked"}))
                c.send(chunks + b"0\r\n\r\n")
            r = c.read_response()
            c.close()
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.json(), {"bytes": len(body), "fnv1a64": fnv1a64(body)}, framing)

    def test_fields_after_a_1MiB_messages_array_are_honoured(self):
        gold, spot, s = self.start()
        body = chat_body(1 << 20, ',"service_tier":"priority","max_tokens":7')
        c = Client(s.port, timeout=30)
        r = c.request("POST", "/v1/chat/completions", body, {"authorization": "Bearer sk-rag"})
        c.close()
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.headers["x-sluice-class"], "interactive", "service_tier read after the prompt")
        self.assertEqual(r.headers["x-sluice-pool"], "gold")
        self.assertEqual(len(r.json()["choices"][0]["message"]["content"].split()), 7, "max_tokens reached gpusim")
        # The charge is the prompt's text, not its JSON: 1 MiB of escaped
        # text decodes to fewer bytes than it takes on the wire.
        text = json.loads(body)["messages"][0]["content"].encode()
        want = -(-len(text) // 4) + 4 + 7
        self.assertEqual(metric(s.admin_port, "sluice_tenant_tokens_total", 'tenant="rag",kind="estimated"'), want)

    def test_invalid_json_still_reaches_the_backend(self):
        gold, spot, s = self.start()
        c = Client(s.port, timeout=30)
        for body in (b'{"prompt": "hello", "max_tokens": ', b'{"prompt": "\xff"}', b"not json at all"):
            r = c.request("POST", "/v1/completions", body, {"authorization": "Bearer sk-rag"})
            self.assertEqual(r.status, 400, body)
            self.assertEqual(r.json()["error"]["code"], "invalid_json", "gpusim's own answer")
            self.assertEqual(r.headers["x-sluice-class"], "standard")
        c.close()


if __name__ == "__main__":
    unittest.main(warnings="ignore")
