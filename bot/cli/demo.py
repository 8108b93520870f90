"""``ausweg demo``: the terminal chat, in its own folder, never next to real data."""

from __future__ import annotations

from pathlib import Path

from config.settings import EXAMPLE_DIRECTORY, ConfigError, Settings, ensure_demo_keys

#: The demo's own folder (database, key store, demo keys), never the configured one.
DEMO_DIR = Path("ausweg-demo")


def demo_refusals(settings: Settings, folder: Path) -> list[str]:
    """Settings that point at a real installation: the demo must not run next to them.

    The demo writes keys, a key store and a demo contact; in a folder with a production
    ``.env`` (or ``AUSWEG_*`` variables) it would write them into the real data.
    """
    found = []
    if settings.database.url:
        found.append(f"a database ({settings.database.url.split('://', 1)[0]}://...)")
    if settings.crypto.keystore_url:
        found.append("a key store URL")
    if settings.crypto.key_file or settings.crypto.master_keys:
        found.append("real keys")
    if "data_dir" in settings.model_fields_set and (
        settings.data_dir.resolve() != folder.resolve()
    ):
        found.append(f"a data folder ({settings.data_dir})")
    if settings.telegram.enabled or settings.matrix.enabled:
        found.append("an enabled platform")
    return found


def prepare_demo(settings: Settings, folder: Path) -> Settings:
    """Point the settings at the demo folder, or refuse (see :func:`demo_refusals`)."""
    refusals = demo_refusals(settings, folder)
    if refusals:
        raise ConfigError(
            "the demo does not run next to a real installation: the settings (.env or"
            f" AUSWEG_* variables) name {', '.join(refusals)}. Run `ausweg demo` in another"
            " folder, without those settings."
        )
    settings.mode = "demo"
    settings.data_dir = folder
    settings.directory_path = EXAMPLE_DIRECTORY  # its staff sit in the console's staff room
    print(f"Demo data in {folder.resolve()} (delete the folder to start over).")
    ensure_demo_keys(settings)
    return settings


async def demo(settings: Settings) -> int:
    """Play the person and the counsellor in one terminal."""
    from bot.app import App
    from bot.transports.console import ConsoleTransport

    console = ConsoleTransport(locale=settings.default_locale)
    # The demo waits for its sends (unlike `run`): the console has no outbox, so a reply
    # still queued when input ends would be lost, and a reply printed after the next
    # prompt would make the transcript hard to follow. The queues are the same.
    app = App(settings, [console], wait_for_sends=True)
    await app.start()
    try:
        await console.run()
    finally:
        await app.stop()
    return 0
