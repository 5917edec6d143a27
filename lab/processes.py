"""Starting and stopping the lab's long-running processes: by their PIDs, and as the
systemd of a host would, by the cgroup that holds each one's whole tree."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from lab.config import PREFIX, LabError
from lab.shell import step

CGROUP_FS = Path("/sys/fs/cgroup")


def start(
    argv: list[str],
    log: Path,
    pidfile: Path,
    *,
    env: dict | None = None,
    cgroups: list[Path] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start a detached process, logging to ``log``, and record its PID; with
    ``cgroups``, the process starts in those cgroups (made if missing)."""
    if cgroups:
        # A shell moves itself into the cgroups, then becomes the program.
        for cgroup in cgroups:
            cgroup.mkdir(parents=True, exist_ok=True)
        enter = "".join(f'echo $$ > "{cgroup}/cgroup.procs" && ' for cgroup in cgroups)
        argv = ["sh", "-c", f'{enter}exec "$@"', "sh", *argv]
    with log.open("ab") as output:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
    pidfile.write_text(f"{process.pid}\n")
    return process.pid


def running(pidfile: Path, name: str) -> psutil.Process | None:
    """The live process recorded in ``pidfile`` if it runs program ``name``, else None."""
    try:
        process = psutil.Process(int(pidfile.read_text().strip()))
        # A program, or one that an interpreter runs (a script, or `python -m module`).
        program = [Path(arg).name for arg in process.cmdline()[:3]]
        if process.status() != psutil.STATUS_ZOMBIE and name in program:
            return process
    except (OSError, ValueError, psutil.Error):
        pass
    return None


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie does not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def stop(processes: list[psutil.Process], grace: float) -> None:
    """SIGTERM each process, wait up to ``grace`` seconds, then SIGKILL what is left
    together with every descendant."""
    family = []
    for process in processes:
        try:
            family.extend([process, *process.children(recursive=True)])
            process.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            continue
    _gone, alive = psutil.wait_procs(processes, timeout=grace)
    for process in alive + family:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(family, timeout=5)


def wait_for(predicate, timeout: float, interval: float = 1.0) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def cgroup_roots() -> list[Path]:
    """The cgroup hierarchies the lab puts its processes in: on a hybrid host, the
    unified and the named systemd hierarchy both; on a cgroup v2 host, the one tree."""
    if (CGROUP_FS / "cgroup.controllers").exists():
        return [CGROUP_FS]
    return [root for root in (CGROUP_FS / "unified", CGROUP_FS / "systemd") if root.is_dir()]


def lab_cgroups(*names: str) -> list[Path]:
    """The lab's cgroup ``paas-lab/<names...>`` in each of those hierarchies."""
    return [root.joinpath(PREFIX, *names) for root in cgroup_roots()]


def cgroup_pids(cgroups: list[Path]) -> set[int]:
    """Every process in ``cgroups`` and in the cgroups below them."""
    pids = set()
    for cgroup in cgroups:
        for procs in cgroup.rglob("cgroup.procs"):
            try:
                pids.update(int(pid) for pid in procs.read_text().split())
            except OSError:
                continue  # a cgroup removed meanwhile
    return pids


def stop_cgroups(main: psutil.Process | None, cgroups: list[Path], grace: float) -> None:
    """Stop a daemon as systemd stops a unit: SIGTERM to its main process, up to
    ``grace`` seconds for its whole tree to end, then SIGKILL to every process still in
    its cgroups (also when the main process had died before), and the cgroups removed."""
    if main is not None:
        try:
            main.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
        else:
            wait_for(lambda: not cgroup_pids(cgroups), timeout=grace, interval=0.2)

    def killed_all() -> bool:
        left = cgroup_pids(cgroups)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        return not left

    if not wait_for(killed_all, timeout=10, interval=0.1):
        raise LabError(f"processes {sorted(cgroup_pids(cgroups))} outlived SIGKILL in {cgroups}")
    for cgroup in cgroups:
        remove_cgroup(cgroup)


def remove_cgroup(cgroup: Path, timeout: float = 10.0) -> None:
    """Remove a cgroup and the ones below it (deepest first), once the processes that
    were stopped have left them (a killed process leaves when it has been reaped)."""
    if not cgroup.is_dir():
        return
    paths = sorted((p for p in cgroup.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
    for path in [*paths, cgroup]:
        if not wait_for(lambda p=path: _rmdir(p), timeout=timeout, interval=0.1):
            left = (path / "cgroup.procs").read_text().split()
            raise LabError(f"cgroup {path} still has processes {', '.join(left)}")


def _rmdir(path: Path) -> bool:
    try:
        path.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class HostDaemon:
    """A daemon the lab runs on this host, handled as systemd handles a unit: it runs in
    a cgroup of its own, it is up only while its main process runs, and it is stopped and
    cleaned as the whole tree of processes it made."""

    # The name its main process runs under (the program, or the script or module an
    # interpreter runs).
    program: str
    root: Path
    cgroup: str

    @property
    def pidfile(self) -> Path:
        # The lab's record of the main process it started (a daemon may keep one of its own).
        return self.root / "main.pid"

    @property
    def console(self) -> Path:
        return self.root / "console.log"

    @property
    def cgroups(self) -> list[Path]:
        return lab_cgroups(self.cgroup)

    def main(self) -> psutil.Process | None:
        """The daemon's main process, when it runs (in the daemon's cgroup)."""
        process = running(self.pidfile, self.program)
        if process is not None and process.pid in cgroup_pids(self.cgroups):
            return process
        return None

    def processes(self) -> set[int]:
        """Every process of the daemon's tree, its main process or not."""
        return cgroup_pids(self.cgroups)

    def start(self, argv: list[str], cwd: Path | None = None) -> int:
        """Start the daemon anew as ``argv``, after stopping what is left of a previous
        one (its children outlive a main process that was killed); its main process's PID."""
        left = self.processes()
        if left:
            step(f"{self.program}: its main process is gone; stopping the {len(left)} it left")
            self.stop(grace=0)
        self.root.mkdir(parents=True, exist_ok=True)
        return start(argv, log=self.console, pidfile=self.pidfile, cgroups=self.cgroups, cwd=cwd)

    def stop(self, grace: float) -> None:
        stop_cgroups(self.main(), self.cgroups, grace)

    def state(self) -> str:
        """``up``, ``down``, or down with the processes its main process left."""
        if self.main() is not None:
            return "up"
        left = self.processes()
        if left:
            return f"down (its main process is gone; {len(left)} of its processes still run)"
        return "down"
