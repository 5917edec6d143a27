"""The lab's salt-master: the repository's etc/salt on the host's private address, and
the master's own minion beside it, each in a cgroup of its own."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import salt.crypt
import yaml

from lab import checkout
from lab.checkout import relocate
from lab.config import (
    LAB_FILES_DIR,
    MASTER_CONFIG_DIR,
    MASTER_LAB_CONFIG,
    MASTER_ROOT,
    PILLAR_DIR,
    PILLAR_OVERLAY_DIR,
    REPO,
    STATE_DIR,
    Lab,
    LabError,
)
from lab.processes import HostDaemon, alive, wait_for
from lab.shell import step

BIN = Path(sys.executable).parent
PKI_DIR = MASTER_ROOT / "etc/salt/pki/master"
LOG = MASTER_ROOT / "var/log/salt/master"
# The master's own minion (it holds the CA), on this host like the master.
CA_MINION_ROOT = STATE_DIR / "master-minion"
CA_MINION_CONFIG_DIR = CA_MINION_ROOT / "etc/salt"
# The master's request server: minions and the salt CLIs reach it there.
RET_PORT = 4506
# The lab's pillar is a pillar environment of its own, and the only one its master
# reads: Salt merges the lists of master.d's files, so the checkout's pillar/ (in
# checkout.conf) would otherwise be read beside it.
PILLARENV = "lab"


@dataclass(frozen=True)
class SaltDaemon(HostDaemon):
    """A Salt daemon of the lab, run from its configuration directory."""

    config_dir: Path

    def start(self) -> int:
        return super().start(
            [str(BIN / self.program), "--config-dir", str(self.config_dir)], cwd=REPO
        )


MASTER = SaltDaemon("salt-master", MASTER_ROOT, "master", MASTER_CONFIG_DIR)
CA_MINION = SaltDaemon("salt-minion", CA_MINION_ROOT, "master-minion", CA_MINION_CONFIG_DIR)


def lab_config(lab: Lab) -> dict:
    """The lab's master.d override, on top of the checkout's (checkout.conf): the lab's
    own state directory, the private address to listen on, its pillar and files."""
    shipped = yaml.safe_load((MASTER_CONFIG_DIR / "master").read_text())
    return {
        "root_dir": str(MASTER_ROOT),
        "interface": lab.master_address,
        # The variant's overlay comes first, so its top file is the one used.
        "pillarenv": PILLARENV,
        "pillar_roots": {PILLARENV: [str(PILLAR_OVERLAY_DIR), str(PILLAR_DIR)]},
        "file_roots": {"base": [*relocate(shipped["file_roots"]["base"]), str(LAB_FILES_DIR)]},
    }


def write_pillar(lab: Lab, etcd_archive: dict | None) -> None:
    """The lab's pillar overlay: lab/pillar's top file with a ``lab`` sls added to every
    target, and that sls holding what the variant changes (nodes, etcd's source)."""
    top = yaml.safe_load((PILLAR_DIR / "top.sls").read_text())
    for targets in top.values():
        for sls in targets.values():
            sls.append("lab")
    paas = dict(lab.overlay or {})
    if etcd_archive is not None:
        paas["etcd"] = {"source": "archive", "archive": etcd_archive}
    PILLAR_OVERLAY_DIR.mkdir(parents=True, exist_ok=True)
    header = "# Written by the lab (lab/master.py): the variant's overlay of lab/pillar/.\n"
    (PILLAR_OVERLAY_DIR / "top.sls").write_text(header + yaml.safe_dump(top))
    (PILLAR_OVERLAY_DIR / "lab.sls").write_text(
        header + yaml.safe_dump({"paas": paas} if paas else {}, default_flow_style=False)
    )


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
    checkout.write()
    MASTER_LAB_CONFIG.parent.mkdir(exist_ok=True)
    MASTER_LAB_CONFIG.write_text(
        "# Written by the lab (lab/master.py) for this checkout; `make lab-down` removes it.\n"
        + yaml.safe_dump(lab_config(lab), default_flow_style=False)
    )
    if MASTER.main() is not None:
        step("master: already running")
        return
    pid = MASTER.start()
    if not wait_for(lambda: _answers(lab) or not alive(pid), timeout=60):
        raise LabError(f"salt-master did not open port {RET_PORT}; see {LOG}")
    if not alive(pid):
        raise LabError(f"salt-master stopped as it started; see {LOG} and {MASTER.console}")
    step(f"master: running on {lab.master_address} (log {LOG})")


def _answers(lab: Lab) -> bool:
    try:
        socket.create_connection((lab.master_address, RET_PORT), timeout=1).close()
    except OSError:
        return False
    return True


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
    if CA_MINION.main() is not None:
        return
    CA_MINION.start()
    step(f"master: its own minion {minion_id} started (it holds the CA)")


def down() -> None:
    CA_MINION.stop(grace=15)
    MASTER.stop(grace=15)
    MASTER_LAB_CONFIG.unlink(missing_ok=True)


def gone() -> LabError:
    """The error when the master's main process is found dead in the middle of a run."""
    return LabError(
        f"the salt-master stopped in the middle of the run (its main process is gone; "
        f"its log: {LOG}): run `make lab` again, which starts it anew and resumes from "
        "what is in place"
    )


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
