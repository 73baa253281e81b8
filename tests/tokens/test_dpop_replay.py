"""The DPoP replay cache (RFC 9449 section 11.1) and server nonces (section 8)."""

from __future__ import annotations

import threading

import pytest

from authchain._encoding import b64url_decode, b64url_encode
from authchain.errors import (
    CapacityError,
    ConfigurationError,
    DPoPNonceError,
    ReplayCacheFullError,
    ReplayError,
    VerificationError,
)
from authchain.tokens.nonce import NonceSource
from authchain.tokens.replay import ReplayCache

NOW = 1_750_000_000


def test_second_use_of_a_key_is_a_replay() -> None:
    cache = ReplayCache()
    cache.check_and_store("jkt:a", NOW + 60, NOW)
    with pytest.raises(ReplayError):
        cache.check_and_store("jkt:a", NOW + 60, NOW + 30)
    cache.check_and_store("jkt:b", NOW + 60, NOW)


def test_entry_is_kept_until_its_expiry_then_forgotten() -> None:
    cache = ReplayCache()
    cache.check_and_store("k", NOW + 60, NOW)
    with pytest.raises(ReplayError):
        cache.check_and_store("k", NOW + 120, NOW + 60)
    # Long after expiry (past the retention slack) the entry is evicted and the key is new again.
    cache.check_and_store("k", NOW + 200, NOW + 120)
    assert len(cache) == 1


def test_full_cache_of_live_entries_fails_closed_instead_of_forgetting_one() -> None:
    cache = ReplayCache(max_entries=3)
    for i in range(3):
        cache.check_and_store(f"k{i}", NOW + 60, NOW)
    with pytest.raises(ReplayCacheFullError) as info:
        cache.check_and_store("k3", NOW + 60, NOW)
    # A full cache is a capacity problem (503, retry later), not a verdict on the proof: an
    # ``except ReplayError`` or ``except VerificationError`` must not catch it.
    assert isinstance(info.value, CapacityError)
    assert not isinstance(info.value, VerificationError)
    assert info.value.code == "replay_cache_full"
    # Nothing live was forgotten to make room.
    for i in range(3):
        with pytest.raises(ReplayError):
            cache.check_and_store(f"k{i}", NOW + 60, NOW + 1)


def test_full_cache_admits_new_entries_once_old_ones_expire() -> None:
    cache = ReplayCache(max_entries=2)
    cache.check_and_store("a", NOW + 10, NOW)
    cache.check_and_store("b", NOW + 60, NOW)
    with pytest.raises(ReplayCacheFullError):
        cache.check_and_store("c", NOW + 60, NOW + 5)
    cache.check_and_store("c", NOW + 80, NOW + 20)
    assert len(cache) == 2
    with pytest.raises(ReplayError):
        cache.check_and_store("b", NOW + 80, NOW + 20)


def test_memory_stays_bounded_under_a_stream_of_unique_keys() -> None:
    cache = ReplayCache(max_entries=100, window=300)
    for i in range(5000):
        cache.check_and_store(f"k{i}", NOW + i // 10 + 1, NOW + i // 10)
        assert len(cache) <= 100


def test_long_keys_are_stored_at_fixed_size() -> None:
    cache = ReplayCache()
    cache.check_and_store("j" * 10_000, NOW + 60, NOW)
    with pytest.raises(ReplayError):
        cache.check_and_store("j" * 10_000, NOW + 60, NOW)
    assert all(len(k) == 16 for k in cache._seen)


def test_entry_needing_more_than_the_window_is_a_configuration_error() -> None:
    cache = ReplayCache(window=300)
    with pytest.raises(ConfigurationError):
        cache.check_and_store("k", NOW + 301, NOW)


@pytest.mark.parametrize(("max_entries", "window"), [(0, 300), (10, 0), (-1, -1)])
def test_nonsensical_sizes_are_configuration_errors(max_entries: int, window: int) -> None:
    with pytest.raises(ConfigurationError):
        ReplayCache(max_entries=max_entries, window=window)


def test_concurrent_uses_of_one_key_admit_exactly_one() -> None:
    cache = ReplayCache()
    barrier = threading.Barrier(8)
    admitted: list[int] = []
    refused: list[int] = []

    def attempt(i: int) -> None:
        barrier.wait()
        for n in range(200):
            try:
                cache.check_and_store(f"k{n}", NOW + 60, NOW)
            except ReplayError:
                refused.append(i)
            else:
                admitted.append(i)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 200
    assert len(refused) == 7 * 200


# --------------------------------------------------------------------------------------------------
# NonceSource.


def test_nonce_is_accepted_in_its_step_and_the_next() -> None:
    source = NonceSource(b"s" * 32, lifetime=300)
    nonce = source.current(NOW)
    source.check(nonce, NOW)
    step_end = (NOW // 300 + 1) * 300
    source.check(nonce, step_end + 299)
    with pytest.raises(DPoPNonceError) as info:
        source.check(nonce, step_end + 300)
    assert info.value.nonce == source.current(step_end + 300)


def test_nonce_from_a_future_step_is_refused() -> None:
    source = NonceSource(b"s" * 32, lifetime=300)
    with pytest.raises(DPoPNonceError):
        source.check(source.current(NOW + 300), NOW)


def test_nonce_is_stable_within_a_step_and_safe_for_the_dpop_nonce_header() -> None:
    source = NonceSource(b"s" * 32, lifetime=300)
    start = NOW // 300 * 300
    assert source.current(start) == source.current(start + 299) != source.current(start + 300)
    # RFC 9449 section 8.1: nonce = 1*NQCHAR.
    assert all(c == "!" or "#" <= c <= "[" or "]" <= c <= "~" for c in source.current(NOW))


def test_nonce_from_another_secret_is_refused() -> None:
    ours, theirs = NonceSource(b"s" * 32), NonceSource(b"t" * 32)
    with pytest.raises(DPoPNonceError):
        ours.check(theirs.current(NOW), NOW)


def test_replicas_sharing_a_secret_accept_each_others_nonces() -> None:
    NonceSource(b"s" * 32).check(NonceSource(b"s" * 32).current(NOW), NOW)


def test_forged_nonce_with_a_current_step_and_tampered_mac_is_refused() -> None:
    source = NonceSource(b"s" * 32)
    raw = bytearray(b64url_decode(source.current(NOW)))
    raw[-1] ^= 1
    with pytest.raises(DPoPNonceError):
        source.check(b64url_encode(bytes(raw)), NOW)


@pytest.mark.parametrize("nonce", ["", "short", "x" * 32, "=" * 32, "é" * 32, "A" * 31 + "="])
def test_malformed_nonce_is_refused_with_a_fresh_one(nonce: str) -> None:
    source = NonceSource(b"s" * 32)
    with pytest.raises(DPoPNonceError) as info:
        source.check(nonce, NOW)
    assert info.value.nonce == source.current(NOW)


def test_short_secret_or_lifetime_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        NonceSource(b"s" * 31)
    with pytest.raises(ConfigurationError):
        NonceSource(b"s" * 32, lifetime=0)


def test_generated_sources_have_independent_secrets() -> None:
    a, b = NonceSource.generate(), NonceSource.generate()
    assert a.current(NOW) != b.current(NOW)
