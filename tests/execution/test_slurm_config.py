"""The scheduler factories without a scheduler: what the site YAML turns into (poll period,
heartbeats, Torque ppn, #PBS lines, retry policy) and clear errors for bad site input."""

from __future__ import annotations

from pathlib import Path

import pytest
from parsl.executors.high_throughput.errors import ManagerLost

from parsl_configs import factory_for
from parsl_configs.common import NO_RETRY, retry_infrastructure_only
from parsl_configs.pbs import pbs_directives, pbs_provider
from pyacemaker.config import ConfigError, SiteConfig, StageResources, load_site
from pyacemaker.programs import Launch, run_program

REPO = Path(__file__).resolve().parents[2]


def test_slurm_site_becomes_executors_with_its_settings(tmp_path: Path) -> None:
    site = load_site(REPO / "site_configs" / "test-slurm.yaml")
    config = factory_for("slurm")(site, tmp_path)
    by_label = {e.label: e for e in config.executors}
    assert set(by_label) == {"dft", "train", "md", "light", "teacher"}
    dft = by_label["dft"]
    assert (dft.heartbeat_period, dft.heartbeat_threshold) == (2, 8)
    assert dft.provider.status_polling_interval == 2
    assert dft.provider.partition == "debug" and dft.provider.max_blocks == 1
    assert type(by_label["light"].provider.launcher).__name__ == "SrunLauncher"
    assert type(dft.provider.launcher).__name__ == "SingleNodeLauncher"
    assert config.retries == 1 and config.retry_handler is retry_infrastructure_only


def test_cluster_yaml_resources_reach_the_providers(tmp_path: Path) -> None:
    site = load_site(REPO / "site_configs" / "cluster.yaml")
    config = factory_for("slurm")(site, tmp_path)
    dft = next(e for e in config.executors if e.label == "dft")
    assert dft.provider.cores_per_node == 4 * 16 and dft.max_workers_per_node == 4
    assert "module load apptainer" in dft.provider.worker_init
    assert dft.provider.status_polling_interval == 60


def test_pbs_lines_and_torque_cores() -> None:
    site = SiteConfig(scheduler="pbs", pbs_flavor="torque", queue="short", account="proj",
                      scheduler_options="#PBS -l mem=4gb")
    site.resources["dft"] = StageResources(cores_per_task=4, max_parallel_tasks=3)
    assert pbs_directives(site) == "#PBS -q short\n#PBS -A proj\n#PBS -l mem=4gb"
    torque = pbs_provider(site, "dft")
    assert "#PBS -l nodes=${nodes_per_block}:ppn=12" in torque.template_string
    site.pbs_flavor = "pbspro"
    assert pbs_provider(site, "dft").cpus_per_node == 12


def test_only_lost_workers_are_retried() -> None:
    assert retry_infrastructure_only(ManagerLost(b"m1", "node7"), None) == 1.0
    assert retry_infrastructure_only(ValueError("scf failed"), None) == NO_RETRY


@pytest.mark.parametrize(("yaml_text", "named"), [
    ("heartbeat_treshold_s: 10\n", "heartbeat_treshold_s: unknown key"),
    ("heartbeat_period_s: 30\nheartbeat_threshold_s: 10\n", "heartbeat_threshold_s (10) must"),
    ("scheduler_poll_s: 0\n", "scheduler_poll_s"),
    ("scheduler: slurm\nqueue: debug\n", "'queue' is a PBS field"),
    ("container: {runtime: docker}\n", "container.runtime"),
])
def test_bad_site_input_names_the_field(tmp_path: Path, yaml_text: str, named: str) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        load_site(path)
    assert str(path) in str(err.value) and named in str(err.value)


def test_missing_container_image_is_named(tmp_path: Path) -> None:
    launch = Launch(container_runtime="charliecloud", image=str(tmp_path / "no-such-image"))
    with pytest.raises(FileNotFoundError, match="no-such-image.*container.images"):
        run_program(["pw.x"], tmp_path / "task", launch=launch)
