"""Routing by model: pools that list the models they serve, the 404 for a
model no pool of the class serves, GET /v1/models, queued requests that wait
for their own pools, and a reload that moves a model."""

import hashlib
import json
import signal
import unittest

from harness import Client, ClusterTest, get_json, metric, render, sluice_config, wait_for


def h(key):
    return hashlib.sha256(key.encode()).hexdigest()


def config(a, b, a_inflight=4, a_models="[model-a, shared]", b_models="[model-b, shared]"):
    return f"""
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
classes:
  standard:    {{ max_queue: 64, max_wait_ms: 20000, pools: [pa, pb] }}
pools:
  pa:
    slice: elastic
    models: {a_models}
    backends: [ {{ address: {a}, max_inflight: {a_inflight} }} ]
  pb:
    slice: elastic
    models: {b_models}
    backends: [ {{ address: {b}, max_inflight: 4 }} ]
tenants:
  t: {{ keys: [ {{ sha256: "{h('sk-t')}" }} ], default_class: standard, max_class: standard }}
"""


KEY = {"authorization": "Bearer sk-t"}


def ask(model, max_tokens=4):
    return {"model": model, "prompt": "hello", "max_tokens": max_tokens}


def served(sim):
    return get_json(sim.port, "/stats")["requests"]


class Models(ClusterTest):
    def start(self, a_args=(), sluice_args=(), **kw):
        self.a = self.gpusim(*a_args)
        self.b = self.gpusim()
        self.s = self.sluice(config(self.a.addr, self.b.addr, **kw), *sluice_args)
        return self.s

    def test_each_model_reaches_only_the_pools_that_serve_it(self):
        s = self.start()
        c = Client(s.port)
        for _ in range(3):
            r = c.request("POST", "/v1/completions", ask("model-b"), KEY)
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.headers["x-sluice-pool"], "pb", "pa comes first, but does not serve model-b")
        self.assertEqual((served(self.a), served(self.b)), (0, 3))
        for _ in range(2):
            r = c.request("POST", "/v1/completions", ask("model-a"), KEY)
            self.assertEqual(r.headers["x-sluice-pool"], "pa")
        r = c.request("POST", "/v1/chat/completions",
                      {"model": "model-b", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}, KEY)
        self.assertEqual((r.status, r.headers["x-sluice-pool"]), (200, "pb"))
        # Served by both, and a body without a model: any pool of the class.
        self.assertEqual(c.request("POST", "/v1/completions", ask("shared"), KEY).status, 200)
        self.assertEqual(c.request("POST", "/v1/completions", {"prompt": "x", "max_tokens": 2}, KEY).status, 200)
        self.assertEqual((served(self.a), served(self.b)), (4, 4))
        c.close()

    def test_a_model_no_pool_serves_is_404_model_not_found(self):
        s = self.start(sluice_args=("-v",))  # -v: 4xx rejections are logged too
        c = Client(s.port)
        r = c.request("POST", "/v1/completions", ask("gpt-4o"), KEY)
        self.assertEqual(r.status, 404)
        self.assertEqual(r.headers["x-sluice-reject-reason"], "model_not_found")
        self.assertEqual(r.headers["x-should-retry"], "false")
        self.assertNotIn("retry-after", r.headers)
        err = r.json()["error"]
        self.assertEqual(err["code"], "model_not_found")
        self.assertEqual(err["type"], "invalid_request_error")
        self.assertEqual(err["param"], "model")
        self.assertEqual(err["message"], "The model `gpt-4o` does not exist or you do not have access to it.")
        # A name that is the client's own text comes back escaped, whole,
        # and never breaks a log line.
        evil = 'x"}\n\u001b[31m`\\é'
        r = c.request("POST", "/v1/completions", ask(evil), KEY)
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json()["error"]["message"],
                         f"The model `{evil}` does not exist or you do not have access to it.")
        r = c.request("POST", "/v1/completions", ask("m" * 300), KEY)
        self.assertEqual((r.status, r.json()["error"]["code"]), (404, "model_not_found"))
        self.assertEqual(metric(s.admin_port, "sluice_rejections_total",
                                'class="standard",reason="model_not_found"'), 3)
        self.assertEqual((served(self.a), served(self.b)), (0, 0), "nothing reached a backend")
        # Nothing was charged: the connection still serves the next request.
        self.assertEqual(c.request("POST", "/v1/completions", ask("model-a"), KEY).status, 200)
        c.close()
        logged = [l for l in s.lines if "reject 404 model_not_found" in l]
        self.assertEqual(len(logged), 3, s.output()[-2000:])
        self.assertIn("The model `gpt-4o` does not exist", logged[0])
        self.assertIn("x\"}\\x0a\\x1b[31m`\\x5c\\xc3\\xa9", logged[1], "the client's bytes, escaped")
        self.assertNotIn("\x1b", s.output())

    def test_models_list_is_the_union_after_the_key_is_checked(self):
        s = self.start(a_models="[zeta, model-a, shared]")
        c = Client(s.port)
        r = c.request("GET", "/v1/models", headers=KEY)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.headers["content-type"], "application/json")
        body = r.json()
        self.assertEqual(body["object"], "list")
        self.assertEqual([m["id"] for m in body["data"]], ["model-a", "model-b", "shared", "zeta"])
        self.assertEqual(body["data"][0], {"id": "model-a", "object": "model", "created": 0, "owned_by": "sluice"})
        self.assertEqual(c.request("GET", "/v1/models?limit=5", headers=KEY).status, 200)
        r = c.request("GET", "/v1/models", headers={"authorization": "Bearer sk-nope"})
        self.assertEqual((r.status, r.json()["error"]["code"]), (401, "invalid_api_key"))
        r = c.request("GET", "/v1/models")
        self.assertEqual((r.status, r.json()["error"]["code"]), (401, "missing_api_key"))
        c.close()
        self.assertEqual((served(self.a), served(self.b)), (0, 0), "answered by sluice itself")
        pools = get_json(s.admin_port, "/status")["pools"]
        self.assertEqual(pools["pa"]["models"], ["zeta", "model-a", "shared"], "as listed")

    def test_without_models_the_list_is_the_backends(self):
        gold = self.gpusim("--name", "gold")
        spot = self.gpusim("--name", "spot")
        s = self.sluice(sluice_config(gold.addr, spot.addr))
        c = Client(s.port)
        r = c.request("GET", "/v1/models")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["data"][0]["id"], "gpusim", "forwarded, as before")
        # and a model nobody lists is not refused: nothing routes by model
        self.assertEqual(c.request("POST", "/v1/completions", ask("whatever"), {}).status, 200)
        c.close()

    def test_queued_requests_wait_for_a_pool_serving_their_model(self):
        s = self.start(a_args=("--time-scale", "20"), a_inflight=1)
        busy = Client(s.port, timeout=30)
        busy.send(render("POST", "/v1/completions", ask("model-a", 60), KEY))
        wait_for(lambda: get_json(self.a.port, "/stats")["active"] == 1, what="pa's one slot busy")
        queued = []
        for _ in range(3):
            cl = Client(s.port, timeout=30)
            cl.send(render("POST", "/v1/completions", ask("model-a"), KEY))
            queued.append(cl)
        depth = lambda: metric(s.admin_port, "sluice_queue_depth", 'class="standard"')
        wait_for(lambda: depth() == 3, what="three model-a requests queued")
        # pb has free slots all along, and frees them again and again: the
        # queued model-a requests never take them; model-b goes at once.
        c = Client(s.port, timeout=10)
        for _ in range(5):
            r = c.request("POST", "/v1/completions", ask("model-b"), KEY)
            self.assertEqual((r.status, r.headers["x-sluice-pool"]), (200, "pb"))
        self.assertEqual(depth(), 3)
        self.assertEqual(served(self.b), 5, "only the model-b requests reached pb")
        self.assertEqual(busy.read_response().status, 200)
        for cl in queued:
            r = cl.read_response()
            self.assertEqual((r.status, r.headers["x-sluice-pool"]), (200, "pa"))
        self.assertEqual((served(self.a), served(self.b)), (4, 5))

    def test_a_reload_that_drops_a_model_answers_its_queued_requests(self):
        s = self.start(a_args=("--time-scale", "20"), a_inflight=1)
        busy = Client(s.port, timeout=30)
        busy.send(render("POST", "/v1/completions", ask("shared", 60), KEY))
        wait_for(lambda: get_json(self.a.port, "/stats")["active"] == 1, what="pa's one slot busy")
        waiting = Client(s.port, timeout=30)
        waiting.send(render("POST", "/v1/completions", ask("model-a"), KEY))
        wait_for(lambda: metric(s.admin_port, "sluice_queue_depth", 'class="standard"') == 1, what="queued")
        with open(s.config_path, "w") as f:
            f.write(config(self.a.addr, self.b.addr, a_inflight=1, a_models="[model-c]"))
        before = len(s.lines)
        s.p.send_signal(signal.SIGHUP)
        wait_for(lambda: any("generation 2" in l for l in s.lines[before:]), what="reload applied")
        r = waiting.read_response()
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json()["error"]["code"], "model_not_found")
        self.assertEqual(metric(s.admin_port, "sluice_queue_depth", 'class="standard"'), 0)
        c = Client(s.port)
        self.assertEqual(c.request("POST", "/v1/completions", ask("model-a"), KEY).status, 404)
        r = c.request("GET", "/v1/models", headers=KEY)
        self.assertEqual([m["id"] for m in r.json()["data"]], ["model-b", "model-c", "shared"])
        self.assertEqual(busy.read_response().status, 200, "the request in flight is untouched")
        c.close()


if __name__ == "__main__":
    unittest.main()
