"""Red-team review: the cases of a counsellor removed from the directory are orphaned.

After a reload without Sam (a2), Sam's claimed case stays ``claimed_by=alpha/a2``: it is
not in anyone's /queue, no one in the room is told, the urgent window never runs (it is
claimed), and a danger message calls the removed "Sam" by alias instead of the
coordinator. The person is still relayed into the room, but nobody holds the case.

What should happen: on reload (and at start) cases claimed by or shared with removed
staff are released back to the queue with a note in the staff room (and the person gets
the usual "your counsellor changed" text); an urgent one goes to the coordinator.
"""

from __future__ import annotations

from tests.world import World, directory_without, texts


async def test_attack_removed_counsellors_case_returns_to_the_queue(world: World) -> None:
    w = world
    code = await w.open("p1")
    await w.staff("a2", f"/claim {code}")
    w.t.pop("p1")
    w.app.reload_directory(directory_without("a2"))
    await w.person("p1", "Hallo Sam, bist du da?")
    assert (await w.case(code)).claimed_by != "alpha/a2", "still held by a removed counsellor"
    assert code in texts(await w.staff("a1", "/queue"))


async def test_attack_crisis_in_a_removed_counsellors_case_reaches_the_coordinator(
    world: World,
) -> None:
    w = world
    code = await w.open("p1")
    await w.staff("a2", f"/claim {code}")
    w.t.pop("p1")
    w.app.reload_directory(directory_without("a2"))
    w.t.pop("alpha-room")
    await w.person("p1", "Ich will mich umbringen")
    room = texts(w.t.pop("alpha-room"))
    assert "Kim" in room, f"the alert calls the removed counsellor: {room!r}"


async def test_attack_crisis_in_a_case_of_an_away_counsellor_reaches_the_coordinator(
    world: World,
) -> None:
    """Alex set "/away Urlaub bis 30.11.". A person in Alex's case writes that they want
    to kill themselves: the alert calls "Alex, bitte melde dich jetzt", the person reads
    "Wir haben deiner Beratung sofort Bescheid gesagt", the case has no urgent window
    (claimed) and never escalates - the bot knows Alex is away and tells no one else.

    What should happen: an urgent alert in a case whose claimer is away (or removed) goes
    to the coordinator and the staff room, with the urgent window running."""
    w = world
    code = await w.open("p1")
    await w.staff("a1", f"/claim {code}")
    await w.staff("a1", "/away Urlaub bis 30.11.")
    w.t.pop("p1")
    w.t.pop("alpha-room")
    await w.person("p1", "Ich will mich umbringen")
    room = texts(w.t.pop("alpha-room"))
    assert "Kim" in room or (await w.case(code)).urgent_due_ct is not None, room
