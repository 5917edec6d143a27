"""The lab's salt-master: the repository's etc/salt on the host's private address."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import salt.crypt
import yaml

from lab.config import (
    LAB_FILES_DIR,
    LAB_PILLAR_DIR,
    MASTER_CONFIG_DIR,
    MASTER_LAB_CONFIG,
    MASTER_ROOT,
    REPO,
    STATE_DIR,
    Lab,
    LabError,
)
from lab.processes import running, stop, wait_for
from lab.shell import run, step

BIN = Path(sys.executable).parent
PKI_DIR = MASTER_ROOT / "etc/salt/pki/master"
PIDFILE = MASTER_ROOT / "var/run/salt-master.pid"
LOG = MASTER_ROOT / "var/log/salt/master"
# The master's own minion (it holds the CA), on this host like the master.
CA_MINION_ROOT = STATE_DIR / "master-minion"
CA_MINION_CONFIG_DIR = CA_MINION_ROOT / "etc/salt"
CA_MINION_PIDFILE = CA_MINION_ROOT / "var/run/salt-minion.pid"
SHIPPED_ROOT = "/srv/paas"


def lab_config(lab: Lab) -> dict:
    """The master.d override: the shipped config's /srv/paas paths moved to this
    checkout, the lab's own state directory, and the private address to listen on."""
    shipped = yaml.safe_load((MASTER_CONFIG_DIR / "master").read_text())
    overrides = {key: relocate(value) for key, value in shipped.items() if relocate(value) != value}
    return {
        **overrides,
        # The lab's own pillar overlay comes first, so its top file is the one used.
        "pillar_roots": {"base": [str(LAB_PILLAR_DIR), *relocate(shipped["pillar_roots"]["base"])]},
        "file_roots": {"base": [*relocate(shipped["file_roots"]["base"]), str(LAB_FILES_DIR)]},
        "root_dir": str(MASTER_ROOT),
        "interface": lab.master_address,
    }


def write_pillar(lab: Lab, etcd_archive: dict | None) -> None:
    """The lab's pillar overlay: the shipped top file with a ``lab`` sls added to every
    target, and that sls holding what the variant changes (nodes, etcd's source)."""
    top = yaml.safe_load((REPO / "pillar" / "top.sls").read_text())
    for targets in top.values():
        for sls in targets.values():
            sls.append("lab")
    paas = dict(lab.overlay or {})
    if etcd_archive is not None:
        paas["etcd"] = {"source": "archive", "archive": etcd_archive}
    LAB_PILLAR_DIR.mkdir(parents=True, exist_ok=True)
    header = "# Written by the lab (lab/master.py): the variant's overlay of pillar/.\n"
    (LAB_PILLAR_DIR / "top.sls").write_text(header + yaml.safe_dump(top))
    (LAB_PILLAR_DIR / "lab.sls").write_text(
        header + yaml.safe_dump({"paas": paas} if paas else {}, default_flow_style=False)
    )


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


def ensure_keys() -> None:
    """The master's key pair, made by the lab so that minions can be given its public
    key before they first connect (no trust on first use)."""
    PKI_DIR.mkdir(parents=True, exist_ok=True)
    (PKI_DIR / "minions").mkdir(exist_ok=True)
    if not (PKI_DIR / "master.pem").exists():
        salt.crypt.write_keys(str(PKI_DIR), "master", 2048)


def master_public_key() -> str:
    return (PKI_DIR / "master.pub").read_text()


def accept(minion_id: str, public_key: str) -> None:
    """Pre-accept a minion: its public key where `salt-key -a` would put it."""
    (PKI_DIR / "minions" / minion_id).write_text(public_key)


def forget(minion_id: str) -> None:
    """Remove a retired minion's accepted key."""
    (PKI_DIR / "minions" / minion_id).unlink(missing_ok=True)


def up(lab: Lab) -> None:
    """Write the lab's master config and start the master unless it already runs."""
    MASTER_LAB_CONFIG.parent.mkdir(exist_ok=True)
    MASTER_LAB_CONFIG.write_text(
        "# Written by the lab (lab/master.py) for this checkout; `make lab-down` removes it.\n"
        + yaml.safe_dump(lab_config(lab), default_flow_style=False)
    )
    if running(PIDFILE, "salt-master"):
        step("master: already running")
        return
    LOG.parent.mkdir(parents=True, exist_ok=True)
    run(str(BIN / "salt-master"), "--config-dir", str(MASTER_CONFIG_DIR), "--daemon", cwd=REPO)
    if not wait_for(lambda: running(PIDFILE, "salt-master"), timeout=30):
        raise LabError(f"salt-master did not start; see {LOG}")
    step(f"master: running on {lab.master_address} (log {LOG})")


def master_minion_up(lab: Lab) -> None:
    """Start the master's own minion on this host, pre-accepted, unless it runs."""
    minion_id = lab.topology["master"]["id"]
    CA_MINION_CONFIG_DIR.mkdir(parents=True, exist_ok=True)
    (CA_MINION_CONFIG_DIR / "minion").write_text(
        "# Written by the lab (lab/master.py): the master's own minion, which holds the CA.\n"
        + yaml.safe_dump(
            {
                "id": minion_id,
                "master": lab.master_address,
                "root_dir": str(CA_MINION_ROOT),
                "acceptance_wait_time": 1,
                "random_reauth_delay": 0,
            }
        )
    )
    pki = CA_MINION_ROOT / "etc/salt/pki/minion"
    if not (pki / "minion.pem").exists():
        pki.mkdir(parents=True, exist_ok=True, mode=0o700)
        salt.crypt.write_keys(str(pki), "minion", 2048)
    (pki / "minion_master.pub").write_text(master_public_key())
    accept(minion_id, (pki / "minion.pub").read_text())
    if running(CA_MINION_PIDFILE, "salt-minion"):
        return
    run(str(BIN / "salt-minion"), "--config-dir", str(CA_MINION_CONFIG_DIR), "--daemon")
    step(f"master: its own minion {minion_id} started (it holds the CA)")


def down() -> None:
    processes = [
        process
        for process in (running(CA_MINION_PIDFILE, "salt-minion"), running(PIDFILE, "salt-master"))
        if process
    ]
    stop(processes, grace=15)
    MASTER_LAB_CONFIG.unlink(missing_ok=True)


def salt_cli(*argv: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a salt CLI (salt, salt-run) from the repository root, where the Saltfile
    points it at etc/salt."""
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]],
        cwd=REPO,
        check=False,
        text=True,
        capture_output=True,
        timeout=timeout,
    )


def answering(minion_ids: list[str], timeout: int = 5) -> set[str]:
    """The minions among ``minion_ids`` that answer test.ping."""
    result = salt_cli(
        "salt", "--static", "--out=json", f"--timeout={timeout}", "-L",
        ",".join(minion_ids), "test.ping",
    )  # fmt: skip
    try:
        replies = json.loads(result.stdout or "{}")
    except json.JSONDecodeError:
        return set()
    return {minion for minion, reply in replies.items() if reply is True}
