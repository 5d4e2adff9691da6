"""The ordered partitions' merge helpers (mpc/programs/groups.py), in plaintext:
`merged` pools a run of small groups into one (the lift table's deciles, a
monotone pass's violators), `paired` pairs them up (the k-row and min_share
merges of bins), so fewer rows are pooled than needed."""

from __future__ import annotations

import numpy as np

from mpc.programs.groups import membership, merged, paired


def test_a_run_of_small_groups_pools_into_one_or_pairs_up() -> None:
    groups = [[0], [1], [2], [3], [4]]
    small = np.array([True, True, True, True, False])
    assert merged(groups, small) == [[0, 1, 2, 3, 4]]
    assert paired(groups, small) == [[0, 1], [2, 3], [4]]


def test_a_small_last_group_joins_the_one_before() -> None:
    groups = [[0], [1, 2], [3]]
    assert merged(groups, np.array([False, False, True])) == [[0], [1, 2, 3]]
    assert paired(groups, np.array([False, False, True])) == [[0], [1, 2, 3]]
    assert paired(groups, np.array([False, True, True])) == [[0], [1, 2, 3]]  # (the two small ones pair)
    assert paired([[0]], np.array([True])) == [[0]]


def test_membership_is_the_partition_s_0_1_matrix() -> None:
    matrix = membership([[0, 2], [1]], 3)
    assert matrix.tolist() == [[1, 0], [0, 1], [1, 0]]
