"""Choosing the checkpoint to resume from and removing earlier jobs' checkpoint dirs (flink/job.py), on
directories made here: no Flink."""

from __future__ import annotations

import os
from pathlib import Path

from flink.job import newest_checkpoint, remove_old_checkpoints


def job_dir(root: Path, job: str, completed: list[int], mtime: int, unfinished: int | None = None) -> Path:
    """A `<job id>/` as Flink leaves it: chk-N with `_metadata` when completed, shared/ and taskowned/."""
    (root / job / "shared").mkdir(parents=True)
    (root / job / "taskowned").mkdir()
    for n in completed:
        (root / job / f"chk-{n}").mkdir()
        metadata = root / job / f"chk-{n}" / "_metadata"
        metadata.write_bytes(b"x")
        os.utime(metadata, ns=(mtime + n, mtime + n))
    if unfinished is not None:
        (root / job / f"chk-{unfinished}").mkdir()  # in progress when the job was killed: no _metadata
    return root / job


def test_only_the_dir_of_the_checkpoint_resumed_from_is_kept(tmp_path: Path) -> None:
    oldest = job_dir(tmp_path, "a" * 32, [1, 2], mtime=1_000)
    newest = job_dir(tmp_path, "b" * 32, [7, 8], mtime=5_000, unfinished=9)
    killed_early = job_dir(tmp_path, "c" * 32, [], mtime=9_000, unfinished=1)  # no checkpoint completed
    (tmp_path / "notes").mkdir()  # not a job dir: left alone
    (tmp_path / "README").write_text("mine")

    resume = newest_checkpoint(tmp_path)
    assert resume == newest / "chk-8"
    assert remove_old_checkpoints(tmp_path, resume) == [oldest, killed_early]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README", "b" * 32, "notes"]
    assert (resume / "_metadata").is_file() and (newest / "chk-9").is_dir()
    # the next start (no newer job has completed a checkpoint yet) resumes from the same one, removing nothing
    assert newest_checkpoint(tmp_path) == resume
    assert remove_old_checkpoints(tmp_path, resume) == []


def test_with_no_completed_checkpoint_every_job_dir_goes(tmp_path: Path) -> None:
    killed = [job_dir(tmp_path, c * 32, [], mtime=1_000, unfinished=1) for c in "de"]
    assert newest_checkpoint(tmp_path) is None
    assert remove_old_checkpoints(tmp_path, None) == killed
    assert list(tmp_path.iterdir()) == []
