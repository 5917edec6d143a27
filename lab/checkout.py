"""
The master config of this checkout: etc/salt/master is written for a checkout at
/srv/paas; ``etc/salt/master.d/checkout.conf`` moves those paths to wherever this one is,
so that salt-run and salt (through the Saltfile, from the repository root) load the
runners and modules of this checkout, and keeps what those commands write (Salt's
cache, logs, sockets) in the checkout's own ``.salt-root``: ``salt-run paas.validate
topology=FILE`` then works on a host that never ran a salt-master, as any user. The
lab's master.d/lab.conf puts the lab's own root_dir over it. ``make venv`` writes the
file, and so does the lab before it starts its master; it changes only when
etc/salt/master or this checkout's place does.

    python -m lab.checkout
"""

from __future__ import annotations

from pathlib import Path

import yaml

from lab.config import MASTER_CONFIG_DIR, REPO

SHIPPED_ROOT = "/srv/paas"
CHECKOUT_CONFIG = MASTER_CONFIG_DIR / "master.d" / "checkout.conf"
ROOT_DIR = REPO / ".salt-root"
# salt-run records each run there, and only a salt-master's start would make it.
PROC_DIR = ROOT_DIR / "var/cache/salt/master/proc"


def relocate(value, root: Path = REPO):
    """``value`` (a config value, nested or not) with every path under the shipped
    /srv/paas moved under ``root``."""
    if isinstance(value, str) and (value == SHIPPED_ROOT or value.startswith(SHIPPED_ROOT + "/")):
        return str(root) + value[len(SHIPPED_ROOT) :]
    if isinstance(value, list):
        return [relocate(item, root) for item in value]
    if isinstance(value, dict):
        return {key: relocate(item, root) for key, item in value.items()}
    return value


def checkout_config() -> str:
    """checkout.conf's text: every key of etc/salt/master that names a /srv/paas path,
    with the paths of this checkout, and the checkout's root_dir."""
    shipped = yaml.safe_load((MASTER_CONFIG_DIR / "master").read_text())
    relocated = {key: relocate(value) for key, value in shipped.items()}
    overrides = {key: value for key, value in relocated.items() if value != shipped[key]}
    overrides["root_dir"] = str(ROOT_DIR)
    return (
        "# Written by `make venv` (lab/checkout.py): etc/salt/master's /srv/paas paths\n"
        "# moved to this checkout, and Salt's own files kept in it. Not in git: it names\n"
        "# where this checkout is.\n" + yaml.safe_dump(overrides, default_flow_style=False)
    )


def write() -> bool:
    """Write checkout.conf unless it already says the same (True when it was written),
    and make the directory salt-run needs under the checkout's root_dir."""
    PROC_DIR.mkdir(parents=True, exist_ok=True)
    text = checkout_config()
    if CHECKOUT_CONFIG.is_file() and CHECKOUT_CONFIG.read_text() == text:
        return False
    CHECKOUT_CONFIG.parent.mkdir(exist_ok=True)
    partial = CHECKOUT_CONFIG.with_suffix(".partial")
    partial.write_text(text)
    partial.replace(CHECKOUT_CONFIG)
    return True


if __name__ == "__main__":
    write()
    print(f"{CHECKOUT_CONFIG.relative_to(REPO)}: etc/salt/master's paths moved to {REPO}")
