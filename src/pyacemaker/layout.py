"""The campaign folder's layout, in one place: every path of an iteration is built here.

    <campaign>/iter_NNN/               one folder per iteration
        explore/summary.json           one record per exploration task (ExplorationResult.summary)
        explore/frames.extxyz          the frames above gamma_lower
        explore/<task>/, label/<row>/, fit/ ...
"""

from __future__ import annotations

from pathlib import Path

ITERATION_GLOB = "iter_*"
EXPLORE = "explore"
SUMMARY_FILE = "summary.json"
FRAMES_FILE = "frames.extxyz"


def iteration_name(iteration: int) -> str:
    return f"iter_{iteration:03d}"


def iteration_dir(root: Path, iteration: int) -> Path:
    return Path(root) / iteration_name(iteration)


def exploration_summary(root: Path, iteration: int) -> Path:
    return iteration_dir(root, iteration) / EXPLORE / SUMMARY_FILE


def exploration_frames(root: Path, iteration: int) -> Path:
    return iteration_dir(root, iteration) / EXPLORE / FRAMES_FILE


def all_exploration_summaries(root: Path) -> list[Path]:
    return sorted(Path(root).glob(f"{ITERATION_GLOB}/{EXPLORE}/{SUMMARY_FILE}"))
