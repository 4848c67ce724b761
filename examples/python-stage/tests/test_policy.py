import sys
import unittest
from pathlib import Path

# policy.py lives beside this directory; it imports nothing of WebAssembly.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policy import Config, ConfigProblem, decide  # noqa: E402


class PolicyTest(unittest.TestCase):
    def test_finds_pii_and_says_where_not_what(self) -> None:
        decided = decide(Config(), [("$.to.0.email", "bob@example.com"), ("$.note", "hello")])
        self.assertTrue(decided.deny)
        self.assertEqual(decided.redact, ["$.to.0.email"])
        self.assertNotIn("bob@example.com", decided.message)

    def test_redact_mode_lets_the_call_through(self) -> None:
        decided = decide(Config.parse({"on_match": "redact", "detect": ["ssn"]}), [("$.n", "078-05-1120")])
        self.assertFalse(decided.deny)
        self.assertEqual(decided.redact, ["$.n"])

    def test_many_findings_mask_everything(self) -> None:
        strings = [(f"$.to.{i}", f"u{i}@example.com") for i in range(70)]
        self.assertEqual(decide(Config(), strings).redact, ["**.*"])

    def test_configuration_problems_name_their_path(self) -> None:
        with self.assertRaises(ConfigProblem) as raised:
            Config.parse({"detect": ["email", "iban"]})
        self.assertEqual(raised.exception.path, "detect[1]")
        with self.assertRaises(ConfigProblem) as raised:
            Config.parse({"on_mtch": "deny"})
        self.assertEqual(raised.exception.path, "on_mtch")


if __name__ == "__main__":
    unittest.main()
