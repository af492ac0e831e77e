"""The service's own writes into places the agent wrote before (app/followups/files.py): a planted
symlink at the CI log directory or inside a run's CLI state is never followed."""

from __future__ import annotations

from pathlib import Path

from app.followups.files import LOG_DIR, copy_transcripts, remove_ci_logs, write_ci_logs


def test_ci_logs_never_write_through_a_planted_symlink(tmp_path: Path) -> None:
    worktree, outside = tmp_path / "wt", tmp_path / "service-file"
    worktree.mkdir()
    outside.mkdir()
    (worktree / LOG_DIR).symlink_to(outside)  # committed on the branch by a hostile agent
    written = write_ci_logs(worktree, [("1-test.log", "FAILED test_x\n")])
    assert written == [f"{LOG_DIR}/1-test.log"]
    assert list(outside.iterdir()) == []  # nothing written through the link
    assert not (worktree / LOG_DIR).is_symlink() and (worktree / written[0]).read_text() == "FAILED test_x\n"
    remove_ci_logs(worktree)
    assert not (worktree / LOG_DIR).exists()


def test_a_planted_link_is_removed_not_followed(tmp_path: Path) -> None:
    worktree, victim = tmp_path / "wt", tmp_path / "victim"
    worktree.mkdir()
    victim.mkdir()
    (victim / "keep.txt").write_text("keep")
    (worktree / LOG_DIR).symlink_to(victim)
    remove_ci_logs(worktree)
    assert (victim / "keep.txt").read_text() == "keep" and not (worktree / LOG_DIR).exists()


def test_transcripts_copy_regular_files_only(tmp_path: Path) -> None:
    secret = tmp_path / "service.env"
    secret.write_text("GH_TOKEN=ghp_do_not_copy")
    src, dst = tmp_path / "runs" / "a" / "projects", tmp_path / "runs" / "b" / "projects"
    (src / "-wt").mkdir(parents=True)
    (src / "-wt" / "s1.jsonl").write_text('{"type":"user"}\n')
    (src / "-wt" / "s2.jsonl").symlink_to(secret)  # planted by the earlier run's agent
    (src / "linked-dir").symlink_to(tmp_path)
    copied = copy_transcripts(src, dst)
    assert copied == 1
    assert (dst / "-wt" / "s1.jsonl").read_text() == '{"type":"user"}\n'
    assert not (dst / "-wt" / "s2.jsonl").exists() and not (dst / "linked-dir").exists()
    assert "ghp_do_not_copy" not in "".join(p.read_text() for p in dst.rglob("*") if p.is_file())
