"""The bounded caches the transports and the app keep in memory."""

from bot.bounded import BoundedDict


def test_keeps_the_newest_entries_and_setting_one_makes_it_newest() -> None:
    cache: BoundedDict[str, int] = BoundedDict(2)
    cache["a"] = 1
    cache["b"] = 2
    cache["a"] = 3  # renewed: now "b" is the oldest
    cache["c"] = 4
    assert list(cache.items()) == [("a", 3), ("c", 4)]
