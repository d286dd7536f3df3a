"""The detached driver: the campaign's driver as a chain of small batch jobs.

``pyacemaker submit`` writes ``<workdir>/driver/driver_<n>.sh`` (1 core, the site's
``driver`` settings) and submits it. The job runs ``pyacemaker run ... --driver-job``.
When its time budget is spent (walltime minus ``driver.handover_margin_s``, or
``driver.time_budget_s`` at a stage boundary), a timer in the driver sends it SIGUSR1
(``scancel --batch --signal=USR1 ID`` / ``qsig -s USR1 ID`` asks for a hand-over by hand).
SLURM's own ``--signal=B:USR1@margin`` is not used: it may come up to 60 s early (sbatch(1))
and, before the driver's handler is installed, would kill it; the timer is exact. The
signal takes the driver's normal stop path (programs stopped, state saved, blocks
cancelled by Parsl's cleanup); then the driver submits its successor with a dependency on
its own end (``--dependency=afterany:ID`` / ``-W depend=afterany:ID``) and exits 0. The
successor resumes from the state, as a second ``pyacemaker run`` would.

``<workdir>/driver/chain.json`` records the config, the site, a ``cancelled`` flag and every
driver job (id, submitted, started, host, ended, how it ended). ``pyacemaker cancel`` sets
the flag (a driver about to hand over then does not), stops the current job with SIGTERM
(graceful), and cancels what is left of the campaign's jobs: recorded DFT arrays and, on
SLURM, any job whose batch script lies in the campaign folder (Parsl blocks).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pyacemaker.execution import batch_jobs
from pyacemaker.execution.job_array import ARRAYS_FILE, BATCH_FOLDER, write_atomically
from pyacemaker.site_config import SiteConfig

log = logging.getLogger(__name__)
DRIVER_FOLDER = "driver"
CHAIN_FILE = "chain.json"
HANDOVER_SIGNAL = signal.SIGUSR1


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def chain_path(workdir: Path) -> Path:
    return Path(workdir) / DRIVER_FOLDER / CHAIN_FILE


def read_chain(workdir: Path) -> dict[str, Any] | None:
    path = chain_path(workdir)
    return json.loads(path.read_text()) if path.exists() else None


def _write_chain(workdir: Path, chain: dict[str, Any]) -> None:
    write_atomically(chain_path(workdir), json.dumps(chain, indent=1).encode())


def own_job_id() -> str | None:
    for variable in batch_jobs.JOB_ID_VARIABLES:
        if os.environ.get(variable):
            return os.environ[variable]
    return None


def submit_driver(config: Path, site_file: Path, site: SiteConfig, workdir: Path,
                  after: str | None = None) -> str:
    """Write the next driver script of the chain and submit it (``after``: the job it must
    wait for); the job id is recorded in chain.json."""
    workdir = Path(workdir).resolve()
    folder = workdir / DRIVER_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    chain = read_chain(workdir) or {"config": str(Path(config).resolve()),
                                    "site": str(Path(site_file).resolve()),
                                    "workdir": str(workdir), "cancelled": False, "jobs": []}
    if after is None:  # a new chain started by a user: a cancel before it is forgotten
        chain["cancelled"] = False
    number = len(chain["jobs"])
    driver = site.driver
    shape = batch_jobs.JobShape(
        name=f"pyace-driver-{workdir.name}", walltime=driver.walltime,
        output=folder / f"driver_{number}.out",
        partition=driver.partition or driver.queue or site.partition or site.queue,
        account=driver.account or site.account, extra=driver.scheduler_options)
    from parsl_configs.common import worker_init

    script = folder / f"driver_{number}.sh"
    lines = [*batch_jobs.script_header(site, shape), worker_init(site),
             f"cd {Path.cwd()}",
             f"exec {sys.executable} -m pyacemaker.cli run {chain['config']} --site "
             f"{chain['site']} --workdir {workdir} --driver-job"]
    script.write_text("\n".join(lines) + "\n")
    job_id = batch_jobs.submit(site, script, after=after)
    chain["jobs"].append({"job_id": job_id, "script": str(script), "submitted": _now(),
                          "after": after})
    _write_chain(workdir, chain)
    return job_id


class DriverJob:
    """The running driver job's side of the chain: its timer and its record."""

    def __init__(self, workdir: Path, site: SiteConfig):
        self.workdir = Path(workdir).resolve()
        self.site = site
        self.job_id = own_job_id()
        self._timer: threading.Timer | None = None
        self._started = time.monotonic()

    def start(self) -> None:
        """Record this job as started and arm the hand-over timer (walltime minus margin:
        mid-stage if need be)."""
        self._update(started=_now(), host=socket.gethostname(), pid=os.getpid())
        self._started = time.monotonic()
        hard = self.site.driver.hard_budget_s()
        soft = self.site.driver.time_budget_s
        log.info("driver job %s: hands over to a successor %s%.0f s", self.job_id,
                 f"at the first stage boundary after {soft:.0f} s, at the latest after "
                 if soft else "after ", hard)
        self._timer = threading.Timer(hard, os.kill, (os.getpid(), HANDOVER_SIGNAL))
        self._timer.daemon = True
        self._timer.start()

    def after_stage(self) -> None:
        """Between two stages (Campaign.after_each_stage): hand over once time_budget_s is
        spent, through the same signal as the timer."""
        soft = self.site.driver.time_budget_s
        if soft is not None and time.monotonic() - self._started >= soft:
            os.kill(os.getpid(), HANDOVER_SIGNAL)

    def disarm(self) -> None:
        """No hand-over any more (the run ended): the timer off, a late SIGUSR1 ignored."""
        if self._timer is not None:
            self._timer.cancel()
        signal.signal(HANDOVER_SIGNAL, signal.SIG_IGN)

    def hand_over(self) -> str | None:
        """Submit the successor (unless the chain was cancelled); returns its job id."""
        chain = read_chain(self.workdir) or {}
        if chain.get("cancelled"):
            self.ended("cancelled: no successor")
            log.info("the driver chain was cancelled: no successor submitted")
            return None
        successor = submit_driver(Path(chain["config"]), Path(chain["site"]), self.site,
                                  self.workdir, after=self.job_id)
        self.ended(f"handed over to {successor}")
        log.info("handed over: the campaign goes on in driver job %s (after this job %s)",
                 successor, self.job_id)
        return successor

    def after_interrupt(self, exc: BaseException) -> None:
        """After the stop path has run (state saved): hand over on SIGUSR1, else record
        how the job was stopped (scancel, Ctrl-C: no successor)."""
        from pyacemaker.children import DriverHandover

        self.disarm()
        if isinstance(exc, DriverHandover):
            self.hand_over()
        else:
            self.ended(f"stopped: {exc or type(exc).__name__} (no successor)")

    def ended(self, how: str) -> None:
        self._update(ended=_now(), end=how)

    def _update(self, **fields: Any) -> None:
        chain = read_chain(self.workdir)
        if chain is None:
            return
        for job in chain["jobs"]:
            if job["job_id"] == self.job_id:
                job.update(fields)
        _write_chain(self.workdir, chain)


def chain_lines(workdir: Path, site: SiteConfig | None) -> list[str]:
    """``pyacemaker status``: one line per driver job of the chain."""
    chain = read_chain(workdir)
    if chain is None:
        return []
    lines = [f"  detached driver: {len(chain['jobs'])} job(s)"
             + (" (chain cancelled)" if chain.get("cancelled") else "")]
    for job in chain["jobs"]:
        if "end" in job:
            state = f"ended {job['ended']}: {job['end']}"
        elif site is not None and batch_jobs.job_alive(site, job["job_id"]):
            state = f"running on {job['host']} since {job['started']}" if "started" in job \
                else "pending" + (f" (after {job['after']})" if job.get("after") else "")
        else:
            state = "ended without a record (killed?)"
        lines.append(f"    job {job['job_id']}: {state}")
    return lines


def campaign_array_jobs(workdir: Path) -> list[str]:
    """Job ids of every DFT array recorded in the campaign's batch folders."""
    ids = []
    for record in Path(workdir).glob(f"iter_*/label/{BATCH_FOLDER}/{ARRAYS_FILE}"):
        ids.extend(str(a["job_id"]) for a in json.loads(record.read_text()))
    return ids


def _merge_ends(current: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    """The chain as on disk (a driver may have written its end meanwhile), with the ends
    recorded by the cancel added where the job wrote none."""
    ended = {job["job_id"]: job for job in ours["jobs"] if "end" in job}
    for job in current["jobs"]:
        if "end" not in job and job["job_id"] in ended:
            job.update(ended=ended[job["job_id"]]["ended"], end=ended[job["job_id"]]["end"])
    current["cancelled"] = True
    return current


def cancel_campaign(workdir: Path, site: SiteConfig, grace_s: float = 60.0) -> list[str]:
    """End the detached driver chain and every job of the campaign; returns what was done."""
    workdir = Path(workdir).resolve()
    done: list[str] = []
    chain = read_chain(workdir)
    if chain is not None:
        chain["cancelled"] = True
        _write_chain(workdir, chain)
        for job in reversed(chain["jobs"]):
            job_id = job["job_id"]
            if not batch_jobs.job_alive(site, job_id):
                continue
            if "started" in job and "ended" not in job:  # running: stop it the graceful way
                batch_jobs.signal_job(site, job_id, "TERM")
                deadline = time.monotonic() + grace_s
                while batch_jobs.job_alive(site, job_id) and time.monotonic() < deadline:
                    time.sleep(1.0)
                done.append(f"driver job {job_id}: sent SIGTERM (state saved, programs "
                            "stopped)")
            if batch_jobs.job_alive(site, job_id):
                batch_jobs.cancel(site, [job_id])
                done.append(f"driver job {job_id}: cancelled")
                job.setdefault("ended", _now())
                job.setdefault("end", "cancelled by pyacemaker cancel")
        _write_chain(workdir, _merge_ends(read_chain(workdir) or chain, chain))
    arrays = [j for j in campaign_array_jobs(workdir) if batch_jobs.job_alive(site, j)]
    if arrays:
        batch_jobs.cancel(site, arrays)
        done.append(f"DFT job array(s) cancelled: {', '.join(arrays)}")
    if site.scheduler == "slurm":
        rest = batch_jobs.slurm_jobs_with_scripts_under(workdir)
        if rest:
            batch_jobs.cancel(site, rest)
            done.append(f"blocks/jobs of the campaign cancelled: {', '.join(rest)}")
    return done
