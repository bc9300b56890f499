"""Byte parity with the reference implementation on every golden record."""

import json

from mr3_reward.templates import render_reference


def _records(reference_dir):
    with open(reference_dir / "golden_prompts.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_golden_parity_all_records(reference_dir, pack_dir):
    records = _records(reference_dir)
    assert len(records) == 206
    mismatches = []
    for i, rec in enumerate(records):
        system, user, prefix = render_reference(rec, str(pack_dir))
        for name, got, want in (
            ("system", system, rec["system"]),
            ("user", user, rec["user"]),
            ("prefix", prefix, rec["assistant_prefix_after_chat_template"]),
        ):
            if got != want:
                at = next((k for k, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
                mismatches.append(f"#{i} {rec['builder']} {rec['prompt_language']} {name} @{at}: "
                                  f"got {got[at-20:at+30]!r} want {want[at-20:at+30]!r}")
    assert not mismatches, f"{len(mismatches)} mismatches:\n" + "\n".join(mismatches[:20])
