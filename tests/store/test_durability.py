"""Issue 19 durability: a simulated power loss during a write burst, and a kill while a job holds the write lock.

(A kill during a multi-chunk import is tests/interchange/test_import_kill.py; kills during edits are
tests/store/test_reliability.py.) Many more trials: ``python benchmarks/durability.py``."""

from __future__ import annotations

from tests.store.durability import job_lock_kill_trials, power_loss_trials


def test_power_loss_copies_open_intact_with_every_acknowledged_edit(tmp_path):
    r = power_loss_trials(tmp_path, copies=3, seed=11)
    assert r == {"trials": 3, "losses": 0, "damaged": 0}


def test_kill_while_a_job_holds_the_write_lock(tmp_path):
    r = job_lock_kill_trials(tmp_path, trials=1, seed=5)
    assert r == {"trials": 1, "losses": 0, "damaged": 0}
