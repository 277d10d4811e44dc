"""Operator log format and level: `log_format: json` makes every line sluice
prints one JSON object, `log_level` drops the lines below it, at start and
at reload."""

import json
import signal
import unittest

from harness import Client, ClusterTest, metric, sluice_config, wait_for

BODY = {"prompt": "hello", "max_tokens": 4}


class Logging(ClusterTest):
    def config(self, extra):
        return sluice_config(self.gold.addr, self.spot.addr, extra=extra)

    def setUp(self):
        super().setUp()
        self.gold = self.gpusim()
        self.spot = self.gpusim()

    def reload(self, s, extra, generation):
        with open(s.config_path, "w") as f:
            f.write(self.config(extra))
        s.p.send_signal(signal.SIGHUP)
        wait_for(lambda: metric(s.admin_port, "sluice_config_generation") == generation, what="the reload")

    def send(self, s):
        c = Client(s.port, timeout=10)
        try:
            return c.request("POST", "/v1/completions", BODY).status
        finally:
            c.close()

    def test_json_lines_carry_time_level_msg_and_fields(self):
        s = self.sluice(self.config("log_format: json\nlog_level: debug\n"))
        self.assertEqual(self.send(s), 200)
        self.gold.stop()
        self.spot.stop()
        self.assertIn(self.send(s), (502, 503))  # no backend answers: warn lines with fields
        self.reload(s, "log_format: json\nlog_level: debug\n", 2)  # reload summary lines
        s.wait_line(r"reloaded .*generation 2")
        self.assertEqual(s.stop(signal.SIGTERM), 0)
        self.procs.remove(s)
        lines = s.output().splitlines()
        self.assertGreater(len(lines), 5)
        objs = []
        for line in lines:
            obj = json.loads(line)  # every line, or the test fails here
            self.assertIsInstance(obj, dict, line)
            for key in ("time", "level", "msg"):
                self.assertIn(key, obj, line)
            self.assertRegex(obj["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertIn(obj["level"], ("debug", "info", "warn", "error"))
            objs.append(obj)
        self.assertTrue(any(o["msg"].startswith("proxy listening on") for o in objs))
        self.assertTrue(any(o["level"] == "warn" for o in objs), "the failed backend is told")
        self.assertTrue(any("peer" in o and "request_id" in o for o in objs), "key=value fields are kept")

    def test_warn_hides_info_lines_from_the_reload_on(self):
        s = self.sluice(self.config(""))
        self.assertTrue(any(" info proxy listening" in l for l in s.lines), "info by default, in text")
        self.reload(s, "log_level: warn\n", 2)
        before = len(s.lines)
        self.reload(s, "log_level: warn\n", 3)  # "reloaded ..." is info: hidden
        self.gold.stop()
        self.spot.stop()
        self.assertIn(self.send(s), (502, 503))
        wait_for(lambda: any(" warn " in l for l in s.lines[before:]), what="a warn line")
        after = s.lines[before:]
        self.assertFalse([l for l in after if " info " in l], after)
        self.assertTrue([l for l in after if " warn " in l], after)

    def test_a_bad_value_is_refused(self):
        s = self.sluice(self.config(""))
        with open(s.config_path, "w") as f:
            f.write(self.config("log_format: xml\n"))
        s.p.send_signal(signal.SIGHUP)
        s.wait_line(r"log_format must be text or json, got 'xml'")
        self.assertEqual(metric(s.admin_port, "sluice_config_reloads_total", 'result="error"'), 1)


if __name__ == "__main__":
    unittest.main()
