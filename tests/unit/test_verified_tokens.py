"""The memory of verified tokens: per scope, dropped at expiry, bounded."""

import time

from shared.verified_tokens import VerifiedTokens


def test_a_token_is_found_only_under_the_scope_it_was_verified_for():
    memory = VerifiedTokens()
    memory.remember("token", "audience-a", "caller", time.time() + 60)

    assert memory.get("token", "audience-a") == "caller"
    assert memory.get("token", "audience-b") is None
    assert memory.get("token2", "audience-a") is None


def test_an_expired_entry_is_never_answered_and_is_dropped():
    memory = VerifiedTokens()
    memory.remember("token", "scope", "caller", time.time() - 0.001)

    assert memory.get("token", "scope") is None
    assert len(memory) == 0


def test_the_memory_never_grows_past_its_limit():
    memory = VerifiedTokens(limit=3)
    for number in range(10):
        memory.remember(f"token-{number}", "scope", "caller", time.time() + 60)
        assert len(memory) <= 3
    assert memory.get("token-9", "scope") == "caller"
