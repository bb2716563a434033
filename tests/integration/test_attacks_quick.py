"""The attack suite's deterministic cases in every `make test` (the whole
suite, `make check-attacks`, takes a minute and judges CPU and RSS, so it
is not part of it): log escaping on the servers and echo_client,
ft_server's quotas, 400 for an upgrade with a body, the invalid-message
flood's bounded replies and demo_server dropping undeclared properties.  Each fails on binaries without the fix (see
docs/reliability.md).

    /usr/bin/python3 tests/integration/test_attacks_quick.py
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "attacks"))
import attacks  # noqa: E402

QUICK = ["f10_log_escape", "f10_client_log_escape", "f8_ft_server_quotas",
         "f10_upgrade_with_body", "f6_invalid_flood", "f7_unknown_properties"]

if __name__ == "__main__":
    only = os.environ.get("CASE")
    cases = [c for c in QUICK if not only or only in c]
    if not cases:
        print(f"test_attacks_quick: FAIL: CASE={only!r} matches nothing")
        sys.exit(1)
    sys.exit(attacks.main(["--exact"] + cases))
