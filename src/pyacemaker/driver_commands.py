"""``pyacemaker submit`` and ``pyacemaker cancel``: the campaign's driver as a chain of batch
jobs (see :mod:`pyacemaker.execution.driver_job`), and the chain in ``pyacemaker status``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pyacemaker.config import ConfigError, SiteConfig, load_campaign, load_site

if TYPE_CHECKING:
    from pyacemaker.execution.driver_job import DriverJob


def driver_job_for(args: argparse.Namespace, workdir: Path, site: SiteConfig
                   ) -> DriverJob | None:
    """The running batch job's side of the chain when ``run --driver-job``, else None."""
    if not getattr(args, "driver_job", False):
        return None
    from pyacemaker.execution.driver_job import DriverJob

    return DriverJob(workdir, site)


def _chain_site(workdir: Path) -> SiteConfig | None:
    from pyacemaker.execution.driver_job import read_chain

    chain = read_chain(workdir)
    if chain is None:
        return None
    try:
        return load_site(chain["site"])
    except (ConfigError, OSError):
        return None


def status_lines(workdir: Path) -> list[str]:
    from pyacemaker.execution.driver_job import chain_lines, read_chain

    if read_chain(workdir) is None:
        return []
    return chain_lines(workdir, _chain_site(workdir))


def _cmd_submit(args: argparse.Namespace) -> int:
    from pyacemaker.campaign_lock import CampaignLocked, acquire_campaign_lock
    from pyacemaker.execution import batch_jobs
    from pyacemaker.execution.driver_job import read_chain, submit_driver
    from pyacemaker.sites import resolve_site

    config = load_campaign(args.config)
    site_file = resolve_site(args.site).resolve()
    site = load_site(site_file)
    if site.scheduler == "local":
        raise ConfigError(f"{site_file}: scheduler is 'local': a detached driver needs a batch "
                          "scheduler (scheduler: slurm or pbs); use 'pyacemaker run' here")
    workdir = Path(args.workdir or Path("campaigns") / config.name).resolve()
    chain = read_chain(workdir)
    alive = [job["job_id"] for job in (chain or {}).get("jobs", [])
             if "ended" not in job and batch_jobs.job_alive(site, job["job_id"])]
    if alive:
        print(f"error: driver job {alive[-1]} of {workdir} is pending or running; "
              f"'pyacemaker cancel --workdir {workdir}' first", file=sys.stderr)
        return 1
    try:  # an attached driver on the folder: refuse before submitting anything
        acquire_campaign_lock(workdir).release()
    except CampaignLocked as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    job_id = submit_driver(Path(args.config), site_file, site, workdir)
    print(f"driver job {job_id} submitted ({site.driver.walltime} per job, hands over "
          f"{site.driver.handover_margin_s} s before the end)")
    print(f"  follow: pyacemaker status --workdir {workdir}   (log: {workdir}/campaign.log)")
    print(f"  stop:   pyacemaker cancel --workdir {workdir}")
    return 0


def _cmd_cancel(args: argparse.Namespace) -> int:
    from pyacemaker.execution.driver_job import cancel_campaign

    workdir = Path(args.workdir)
    if not workdir.is_dir():
        print(f"error: {workdir}: no such folder", file=sys.stderr)
        return 2
    site = load_site(args.site) if args.site else _chain_site(workdir)
    if site is None:
        print(f"error: {workdir} has no detached driver chain (driver/chain.json); "
              "give --site to cancel its job arrays and blocks", file=sys.stderr)
        return 2
    done = cancel_campaign(workdir, site)
    for line in done or ["nothing of this campaign was pending or running"]:
        print(line)
    return 0


def add_driver_commands(sub: argparse._SubParsersAction, site_help: str) -> None:
    submit = sub.add_parser("submit", help="run the campaign's driver itself as batch jobs "
                            "that hand over to each other (no login-node process)")
    submit.add_argument("config", help="campaign YAML (see examples/)")
    submit.add_argument("--site", default="cluster", help=site_help)
    submit.add_argument("--workdir", help="campaign folder; default: campaigns/<name>")
    submit.set_defaults(func=_cmd_submit)
    cancel = sub.add_parser("cancel", help="stop a detached campaign: its driver job, its "
                            "DFT arrays and its blocks")
    cancel.add_argument("--workdir", required=True, help="campaign folder")
    cancel.add_argument("--site", help="site YAML (default: the one the chain was submitted "
                        "with)")
    cancel.set_defaults(func=_cmd_cancel)
