"""``pyacemaker``: run, resume and inspect active-learning campaigns."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pyacemaker.config import ConfigError, load_campaign, load_site
from pyacemaker.state import StateError, load_state

log = logging.getLogger("pyacemaker.cli")

DESCRIPTION = """\
Build a validated ACE interatomic potential by active learning.

  pyacemaker doctor examples/cu-emt.yaml --site local
  pyacemaker run examples/cu-emt.yaml --site local --workdir campaigns/cu
  pyacemaker status --workdir campaigns/cu

Running 'run' again on the same --workdir resumes a stopped or killed campaign without
redoing finished DFT calculations or fits; 'run --continue' goes on with a finished one
(after raising its budgets in the YAML)."""


SITE_HELP = ("site YAML, or the name of a shipped site (local, cluster, pbs; a "
             "site_configs/NAME.yaml in the current folder wins); default: %(default)s")


def _cmd_run(args: argparse.Namespace) -> int:
    from pyacemaker.campaign import Campaign
    from pyacemaker.campaign_lock import CampaignLocked, acquire_campaign_lock
    from pyacemaker.children import (
        DriverInterrupted,
        exit_status_after_interrupt,
        install_signal_handlers,
    )
    from pyacemaker.logs import setup_logging
    from pyacemaker.stages.package import write_site_copy

    config = load_campaign(args.config)
    site = load_site(args.site)
    workdir = Path(args.workdir or Path("campaigns") / config.name)
    try:  # before anything is written into the folder; held while this function runs
        lock = acquire_campaign_lock(workdir)
    except CampaignLocked as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    setup_logging(workdir, verbose=args.verbose)
    if lock.warning:
        log.warning("%s", lock.warning)
    log.info("campaign %r (%s) on site %r, working in %s", config.name,
             "-".join(config.elements), site.name, workdir)
    campaign = Campaign.open(config, site, workdir, force=args.force)
    write_site_copy(site, workdir)  # the release ships the site it last ran on
    from pyacemaker.driver_commands import driver_job_for

    driver_job = driver_job_for(args, workdir, site)  # a detached driver's batch job, or None
    restore_signals = install_signal_handlers(handover=driver_job is not None)
    try:
        if driver_job is not None:
            driver_job.start()
            campaign.after_each_stage = driver_job.after_stage
        campaign.run(continue_finished=args.continue_finished)
        if driver_job is not None:
            driver_job.disarm()
            driver_job.ended(campaign.state.stop_reason or "stopped")
    except KeyboardInterrupt as exc:
        if not isinstance(exc, DriverInterrupted):  # a signal handler logged its line
            log.error("interrupted; run the same command again to resume")
        if driver_job is not None:
            driver_job.after_interrupt(exc)  # hand over to a successor, or record the stop
        return exit_status_after_interrupt(workdir, exc)
    except Exception as exc:  # a stage failed: say where, keep the details in the log
        if driver_job is not None:
            driver_job.disarm()
            driver_job.ended(f"failed: {type(exc).__name__}: {exc}"[:500])
        from pyacemaker.recover import closing_advice, lake_problem

        stage = campaign.state.stage
        lake = lake_problem(workdir)  # a corrupt data lake is the cause, not a bug
        bug = lake is None and not isinstance(exc, _operational_errors())
        log.log(logging.ERROR if bug else logging.DEBUG, "traceback of the failure%s",
                " (not a DFT or input problem: a bug in pyacemaker; please report it with "
                "campaign.log)" if bug else "", exc_info=True)
        log.error("stopped in iteration %d, stage %r: %s: %s", campaign.state.iteration,
                  stage, type(exc).__name__, exc)
        log.error("%s", closing_advice(workdir, lake))
        return 1
    finally:
        restore_signals()
        if driver_job is not None:
            driver_job.disarm()  # a late SIGUSR1 from the scheduler is ignored from here on
        lock.release()
    return 0


def _operational_errors() -> tuple[type[BaseException], ...]:
    """Failures with a cause outside our code (input, programs, files): reported in one line.
    Anything else is a bug and is shown with its traceback."""
    from pyacemaker.campaign import CampaignFailed
    from pyacemaker.datastore import DataLakeError
    from pyacemaker.images.registry import ImagePullError
    from pyacemaker.programs import ProgramFailed
    from pyacemaker.stages.oracle.base import OracleConfigError
    from pyacemaker.stages.train.outputs import FitFailed  # pacemaker's own failure, classified

    return (ConfigError, StateError, OracleConfigError, CampaignFailed, ProgramFailed, OSError,
            DataLakeError, FitFailed, ImagePullError)


def _require_folder(workdir: Path) -> None:
    """A mistyped --workdir gets one line naming it, not 'no state.json' or a traceback."""
    if not workdir.is_dir():
        raise StateError(f"{workdir}: no such folder: pass the --workdir the campaign ran in")


def _cmd_status(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir)
    _require_folder(workdir)
    state = load_state(workdir)
    if state is None:
        print(f"{workdir}: no campaign here (no state.json)")
        return 1
    print(f"campaign in {workdir}")
    print(f"  iteration {state.iteration}, stage {state.stage}, "
          f"{'finished: ' + (state.stop_reason or '') if state.finished else 'not finished'}")
    print(f"  DFT calls so far: {state.dft_calls}")
    if state.potential:
        print(f"  current potential: {state.potential.yaml} {state.potential.metrics}")
    for tool, image in state.images.items():
        print(f"  image {tool}: {image.digest or image.reference} "
              f"({', '.join(f'{k} {v}' for k, v in image.versions.items())})")
    for key, record in state.stages.items():
        if record.status == "failed":
            lines = record.message.splitlines() or ["(no message)"]
            print(f"  FAILED: {key} (at {record.finished}): {lines[0]}")
            print("".join(f"    {line}\n" for line in lines[1:6]), end="")
    from pyacemaker.campaign import DATASTORE_FILE
    from pyacemaker.datastore import DataStore

    from pyacemaker.driver_commands import status_lines

    for line in status_lines(workdir):
        print(line)
    db_path = workdir / DATASTORE_FILE
    if db_path.exists():
        store = DataStore(db_path)
        print(f"  data lake: {store.count(status='labelled')} labelled, "
              f"{store.count(status='candidate')} candidates, "
              f"{store.count(status='quarantined')} quarantined")
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from pyacemaker.config import CampaignConfig
    from pyacemaker.doctor import format_report, run_doctor
    from pyacemaker.sites import resolve_site

    site_path = resolve_site(args.site)
    site = load_site(site_path)
    if args.config:
        config, what = load_campaign(args.config), f"campaign {args.config}"
    else:
        config, what = CampaignConfig(elements=["Si"]), "no campaign given: Si with QE defaults"
    workdir = Path(args.workdir or Path("campaigns") / config.name)
    checks = run_doctor(site, config, workdir, quick=args.quick,
                        progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(format_report(checks, f"pyacemaker doctor: site {site.name!r} ({site_path}), {what}, "
                        f"work folder {workdir}"))
    return 1 if any(c.status == "MISSING" for c in checks) else 0


def _cmd_validate(args: argparse.Namespace) -> int:
    if args.potential is not None:
        return _validate_file(args)
    if args.workdir is None:
        print("error: validate needs a campaign (--workdir DIR) or a potential file",
              file=sys.stderr)
        return 2
    from pyacemaker.release import validate_campaign

    report = validate_campaign(Path(args.workdir), args.config)
    print(f"validation of iteration {report.iteration}: {report.verdict}")
    for reason in report.reasons:
        print(f"  - {reason}")
    return 0 if report.passed else 4


def _validate_file(args: argparse.Namespace) -> int:
    from pyacemaker.config import CampaignConfig
    from pyacemaker.sites import resolve_site
    from pyacemaker.validate_file import summary_lines, validate_file

    if args.config:
        config = load_campaign(args.config)
    elif args.elements:
        config = CampaignConfig(elements=args.elements)
    else:
        print("error: validate POTENTIAL needs --elements (e.g. --elements Cu) or --config",
              file=sys.stderr)
        return 2
    output = Path(args.output or Path(args.potential).with_suffix("").name + "-validation")
    report = validate_file(Path(args.potential), config, load_site(resolve_site(args.site)),
                           output, oracle=args.oracle, reference=args.reference,
                           data=args.data)
    print(f"validation of {args.potential}:")
    for line in summary_lines(report):
        print(line)
    print(f"report: {output / 'validation.json'}")
    return 0 if report.passed else 4


def _cmd_report(args: argparse.Namespace) -> int:
    from pyacemaker.recover import require_readable_lake
    from pyacemaker.release import report_campaign

    _require_folder(Path(args.workdir))
    require_readable_lake(Path(args.workdir))  # a corrupt lake: its message, not a traceback
    print(f"report written: {report_campaign(Path(args.workdir), args.config)}")
    return 0


def _cmd_package(args: argparse.Namespace) -> int:
    from pyacemaker.release import package_campaign
    from pyacemaker.stages.package import ReleaseRefused

    try:
        archive = package_campaign(Path(args.workdir), args.config, force=args.force,
                                   version=args.version, author=args.author,
                                   dist_dir=Path(args.dist))
    except ReleaseRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 4
    print(f"release written: {archive}")
    return 0


def _add_release_commands(sub: argparse._SubParsersAction) -> None:
    config_help = "campaign YAML (default: campaign.yaml in the workdir, else defaults)"
    validate = sub.add_parser("validate", help="Go/No-Go quality gate of the current potential")
    report = sub.add_parser("report", help="write <workdir>/report.html")
    package = sub.add_parser("package", help="release folder and zip in dist/")
    for command in (report, package):
        command.add_argument("--workdir", required=True, help="campaign folder")
        command.add_argument("--config", type=Path, help=config_help)
    validate.add_argument("potential", nargs="?", type=Path,
                          help="a potential file (.yace, .yaml, .ace) made anywhere; "
                          "without it: the campaign of --workdir")
    validate.add_argument("--workdir", help="campaign folder")
    validate.add_argument("--config", type=Path, help=config_help + "; with a potential "
                          "file: its elements, validation and oracle settings")
    validate.add_argument("--elements", nargs="+", help="with a potential file: its elements")
    validate.add_argument("--oracle", choices=["qe", "emt"],
                          help="with a potential file: compute references with this oracle "
                          "(qe: DFT tasks on --site, cached in the output folder)")
    validate.add_argument("--reference", type=Path,
                          help="a campaign's reference.json, or a YAML/JSON of moduli in GPa")
    validate.add_argument("--data", type=Path, help="labelled extxyz for the error targets")
    validate.add_argument("--site", default="local", help="site name or YAML (default local)")
    validate.add_argument("--output", type=Path,
                          help="folder for validation.json (default <potential>-validation)")
    package.add_argument("--force", action="store_true",
                         help="package even a potential that failed validation (marked so)")
    package.add_argument("--version", help="SemVer of the release; default 0.<iteration>.0")
    package.add_argument("--author", help="default: the current user")
    package.add_argument("--dist", default="dist", help="output folder; default: %(default)s")
    validate.set_defaults(func=_cmd_validate)
    report.set_defaults(func=_cmd_report)
    package.set_defaults(func=_cmd_package)


def build_parser() -> argparse.ArgumentParser:
    from pyacemaker.images.commands import add_image_commands
    from pyacemaker.reproduce import add_reproduce_command

    parser = argparse.ArgumentParser(
        prog="pyacemaker", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug output")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="start or resume a campaign")
    run.add_argument("config", help="campaign YAML (see examples/)")
    run.add_argument("--site", default="local", help=SITE_HELP)
    run.add_argument("--workdir", help="campaign folder; default: campaigns/<name>")
    run.add_argument("--force", action="store_true",
                     help="start over after a physics setting changed: the old results move "
                     "to superseded/<UTC time>/ (nothing is deleted; labels are reused when "
                     "the oracle and elements are unchanged)")
    run.add_argument("--continue", dest="continue_finished", action="store_true",
                     help="go on with a finished campaign under this config's budgets "
                     "(raise max_iterations / max_dft_calls / max_wall_time_h first; "
                     "execution settings may change, a physics change is refused)")
    run.add_argument("--driver-job", action="store_true", help=argparse.SUPPRESS)
    run.set_defaults(func=_cmd_run)
    from pyacemaker.driver_commands import add_driver_commands

    add_driver_commands(sub, SITE_HELP)

    doctor = sub.add_parser("doctor", help="check that this machine has what a site and a "
                            "campaign need (exit 1 when something is missing)")
    doctor.add_argument("config", nargs="?", help="campaign YAML (default: Si with QE)")
    doctor.add_argument("--site", default="local", help=SITE_HELP)
    doctor.add_argument("--workdir", help="campaign folder; default: campaigns/<name>")
    doctor.add_argument("--quick", action="store_true",
                        help="only look for files and programs (no SCF, imports or LAMMPS run)")
    doctor.set_defaults(func=_cmd_doctor)

    status = sub.add_parser("status", help="show a campaign's progress")
    status.add_argument("--workdir", required=True)
    status.set_defaults(func=_cmd_status)
    recover = sub.add_parser("recover", help="restore a corrupt data lake (data.db) from its "
                             "newest good backup; the corrupt file is kept, renamed")
    recover.add_argument("--workdir", required=True, help="campaign folder")
    recover.set_defaults(func=lambda args: _recover(Path(args.workdir)))
    _add_release_commands(sub)
    add_image_commands(sub)
    add_reproduce_command(sub)
    from pyacemaker.distill_command import add_distill_command

    add_distill_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from pyacemaker.programs import mark_owner

    parser = build_parser()
    args = parser.parse_args(argv)
    mark_owner()  # a resumed run's reaper leaves this command's programs alone
    if args.command != "run":  # run sets up its own, with the campaign's log file
        from pyacemaker.logs import setup_logging

        setup_logging(None, verbose=args.verbose)  # Parsl's DEBUG lines stay off the terminal
    try:
        return args.func(args)
    except (ConfigError, StateError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a corrupt data lake, a folder we cannot write: one line
        message = _one_line_error(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2


def _recover(workdir: Path) -> int:
    from pyacemaker.recover import recover_command

    return recover_command(workdir)


def _one_line_error(exc: Exception) -> str | None:
    """The message of a failure outside our code that reached the top, or None (a bug)."""
    from pyacemaker.datastore import DataLakeError
    from pyacemaker.images.registry import ImagePullError
    from pyacemaker.logs import folder_problem

    if isinstance(exc, (DataLakeError, ImagePullError)):
        return str(exc)
    return folder_problem(exc) if isinstance(exc, OSError) else None


if __name__ == "__main__":
    sys.exit(main())
